"""Turns on a bus: the limit holds, retries go before first attempts, a cancelled wait loses no slot."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from amr.collector.slots import BusSlots

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


async def use(slots: BusSlots, name: str, log: list[str], retry: bool = False, hold: float = 0.01) -> None:
    async with slots.hold(retry):
        log.append(name)
        await asyncio.sleep(hold)


def test_a_retry_takes_the_next_turn_before_first_attempts_waiting() -> None:
    async def scenario() -> list[str]:
        slots, log = BusSlots(1), []
        holder = asyncio.create_task(use(slots, "first", log))
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(use(slots, f"new{i}", log)) for i in range(3)]
        await asyncio.sleep(0)
        retries = [asyncio.create_task(use(slots, f"retry{i}", log, retry=True)) for i in range(2)]
        await asyncio.gather(holder, *waiting, *retries)
        return log

    assert run(scenario()) == ["first", "retry0", "retry1", "new0", "new1", "new2"]


def test_never_more_than_size_at_once() -> None:
    async def scenario() -> int:
        slots, peak, busy = BusSlots(3), 0, 0

        async def work(retry: bool) -> None:
            nonlocal peak, busy
            async with slots.hold(retry):
                busy += 1
                peak = max(peak, busy)
                await asyncio.sleep(0.005)
                busy -= 1

        await asyncio.gather(*(work(i % 4 == 0) for i in range(40)))
        return peak

    assert run(scenario()) == 3


def test_a_cancelled_wait_loses_no_slot_even_when_the_slot_was_just_handed_over() -> None:
    async def scenario() -> list[str]:
        slots, log = BusSlots(1), []
        holder = slots.hold()
        await holder.__aenter__()
        handed = asyncio.create_task(use(slots, "handed", log))
        queued = asyncio.create_task(use(slots, "queued", log))
        dropped = asyncio.create_task(use(slots, "dropped", log))
        await asyncio.sleep(0)
        dropped.cancel()  # still waiting: leaves the queue
        await holder.__aexit__(None, None, None)  # the slot goes to "handed" ...
        handed.cancel()  # ... which is cancelled before it runs: the slot must pass on
        await asyncio.gather(handed, queued, dropped, return_exceptions=True)
        await asyncio.wait_for(use(slots, "after", log), 1)  # the slot is free again
        return log

    assert run(scenario()) == ["queued", "after"]


def test_a_bus_has_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        BusSlots(0)


def test_background_work_waits_for_every_poll_and_retry() -> None:
    async def background(slots: BusSlots, name: str, log: list[str]) -> None:
        async with slots.hold(background=True):
            log.append(name)
            await asyncio.sleep(0.01)

    async def scenario() -> list[str]:
        slots, log = BusSlots(1), []
        holder = asyncio.create_task(background(slots, "chunk0", log))
        await asyncio.sleep(0)
        chunks = [asyncio.create_task(background(slots, f"chunk{i}", log)) for i in (1, 2)]
        await asyncio.sleep(0)
        polls = [asyncio.create_task(use(slots, f"poll{i}", log)) for i in range(2)]
        retry = asyncio.create_task(use(slots, "retry", log, retry=True))
        await asyncio.gather(holder, *chunks, *polls, retry)
        return log

    # a chunk on the line finishes; then every poll and retry waiting goes before the next chunk
    assert run(scenario()) == ["chunk0", "retry", "poll0", "poll1", "chunk1", "chunk2"]
