"""Scheduled polls against Modbus TCP simulators (one port per meter), into a real SQLite store.

One scheduler job per distinct schedule starts its meters' polls: each meter keeps its own jitter,
fresh every slot; a meter whose earlier poll still runs is left out without holding back the
others; nothing waiting out its jitter starts once the collector stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from amr.app import App
from amr.collector.collector import Collector
from amr.collector.result import PollResult
from amr.config import Config, config_from_dict
from simulators.modbus import ModbusTcpSimulator, tcp_simulators
from simulators.model import Faults, VirtualMeter

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def configure(
    tmp_path: Path, sims: list[ModbusTcpSimulator], schedule: object, own: dict[str, object] | None = None
) -> Config:
    """One Modbus TCP bus polled on `schedule` (timeout 0.3 s, 2 retries, backoff 50 ms: a silent meter's
    poll takes 1.05 s); `own`: serial → that meter's own schedule."""
    meters = [
        {"serial": m.serial, "bus": "tcp", "address": f"127.0.0.1:{sim.port}/{m.address}", "profile": "eastron-sdm630",
         **({"schedule": (own or {})[m.serial]} if m.serial in (own or {}) else {})}
        for sim in sims for m, _ in sim.meters.units.values()
    ]  # fmt: skip
    bus = {"name": "tcp", "kind": "modbus-tcp", "url": sims[0].url, "timeout": "300ms", "retries": 2,
           "retry_backoff": "50ms", "schedule": schedule}
    data = {"database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"}, "site": {"timezone": "Europe/Moscow"},
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")}, "buses": [bus], "meters": meters}
    return config_from_dict(data, environ={}, file=tmp_path / "amr.toml")


@contextlib.asynccontextmanager
async def collecting(config: Config, seconds: float) -> AsyncIterator[list[PollResult]]:
    """Collect for `seconds` from a whole second on; yield every finished poll."""
    with App.open(config) as app:
        collector = Collector(app)
        finished: list[PollResult] = []
        collector.on_poll.append(finished.append)
        await asyncio.sleep(1 - time.time() % 1 + 0.05)  # start just after a grid time: whole slots follow
        await collector.start()
        try:
            await asyncio.sleep(seconds)
        finally:
            await collector.stop()
        yield finished


def by_meter(results: list[PollResult]) -> dict[str, list[PollResult]]:
    polls: dict[str, list[PollResult]] = {}
    for result in sorted(results, key=lambda r: r.started_at):
        polls.setdefault(result.serial, []).append(result)
    return polls


def test_meters_of_equal_schedules_share_one_job_and_trigger(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, object]]:
        meters = [VirtualMeter(f"S{n}", address=n) for n in range(1, 7)]
        async with tcp_simulators([[m] for m in meters]) as sims:
            # S1, S2 take the bus's "1h"; S3 and S4 each their own "1h" (equal values, distinct objects);
            # S5 its own "2h"; S6 the same "2h" written out as a table
            own: dict[str, object] = {"S3": "1h", "S4": {"every": "1h"}, "S5": "2h",
                                      "S6": {"every": "2h", "offset": "0s"}}
            config = configure(tmp_path, sims, "1h", own)
            assert config.meters[2].schedule is not config.meters[3].schedule
            with App.open(config) as app:
                collector = Collector(app)
                await collector.start()
                try:
                    assert collector.scheduled is not None
                    jobs = len(collector.scheduled.scheduler.get_jobs())
                    triggers: dict[str, object] = dict(collector.scheduled.triggers())
                finally:
                    await collector.stop()
        return jobs, triggers

    jobs, triggers = run(scenario())
    assert jobs == 2  # one per distinct schedule, not one per meter
    assert triggers["S1"] is triggers["S2"] is triggers["S3"] is triggers["S4"]
    assert triggers["S5"] is triggers["S6"] and triggers["S5"] is not triggers["S1"]


def test_each_meter_has_its_own_jitter_fresh_every_slot(tmp_path: Path) -> None:
    async def scenario() -> list[PollResult]:
        meters = [VirtualMeter(f"J{n}", address=n) for n in range(1, 9)]
        async with tcp_simulators([[m] for m in meters]) as sims:
            config = configure(tmp_path, sims, {"every": "1s", "jitter": "600ms"})
            async with collecting(config, 3.9) as finished:
                return finished

    polls = by_meter(run(scenario()))
    assert len(polls) == 8
    # the grid is whole seconds (every 1 s from local midnight): a poll's delay is its start past one
    delays = {serial: [r.started_at.timestamp() % 1 for r in results] for serial, results in polls.items()}
    for serial, own in delays.items():
        assert len(own) >= 3, serial
    every = [delay for own in delays.values() for delay in own]
    # within the jitter (600 ms), but for the odd poll a loaded machine's loop starts late
    assert sum(delay < 0.6 + 0.05 for delay in every) >= 0.8 * len(every), sorted(every)
    slots: dict[int, list[float]] = {}
    for results in polls.values():
        for result in results:
            slots.setdefault(int(result.started_at.timestamp()), []).append(result.started_at.timestamp() % 1)
    # within one slot the meters start apart (one draw for the whole job would start them together) ...
    assert statistics.median(max(found) - min(found) for found in slots.values() if len(found) >= 4) > 0.15
    # ... and a meter's delay is drawn afresh every slot, not once
    assert statistics.median(max(own) - min(own) for own in delays.values()) > 0.05


def test_a_meter_still_polled_is_left_out_without_holding_back_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="amr.collector")

    async def scenario() -> list[PollResult]:
        good = [VirtualMeter(f"G{n}", address=n) for n in range(1, 4)]
        silent = [VirtualMeter(f"Q{n}", address=n, faults=Faults(silent=True)) for n in range(1, 3)]
        async with tcp_simulators([[m] for m in [*good, *silent]]) as sims:
            config = configure(tmp_path, sims, "1s")  # a silent meter's poll (1.05 s) outlasts the interval
            async with collecting(config, 4.9) as finished:
                return finished

    polls = by_meter(run(scenario()))
    for serial in ("G1", "G2", "G3"):
        assert len(polls[serial]) >= 4, (serial, len(polls[serial]))  # every slot, the silent ones regardless
    for serial in ("Q1", "Q2"):
        results = polls[serial]
        assert 2 <= len(results) <= 3, (serial, len(results))  # every other slot
        for before, after in zip(results, results[1:], strict=False):
            assert after.started_at >= before.finished_at, serial  # never two polls of one meter at once
    left_out = [r.getMessage() for r in caplog.records if "still being polled" in r.getMessage()]
    assert left_out and all(m.startswith("2 meter(s)") and "Q1" in m and "Q2" in m for m in left_out)
    tight = [r.getMessage() for r in caplog.records if "takes up to" in r.getMessage()]
    assert len(tight) == 1 and "Q1" in tight[0] and "G1" in tight[0]  # one warning for the bus's meters


def test_polls_waiting_out_their_jitter_do_not_start_after_stop(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[PollResult], datetime, float, int, int, int]:
        meters = [VirtualMeter(f"W{n}", address=n) for n in range(1, 11)]
        async with tcp_simulators([[m] for m in meters]) as sims:
            config = configure(tmp_path, sims, {"every": "3s", "jitter": "2900ms"})
            with App.open(config) as app:
                collector = Collector(app)
                finished: list[PollResult] = []
                collector.on_poll.append(finished.append)
                await collector.start()
                assert collector.scheduled is not None
                deadline = time.monotonic() + 8
                while collector.scheduled.waiting < 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                waiting = collector.scheduled.waiting
                stopped_at = datetime.now(UTC)
                began = time.monotonic()
                await collector.stop()
                took = time.monotonic() - began
                asked = sum(len(sim.requests) for sim in sims)
                await asyncio.sleep(3.1)  # past every delay drawn
                return finished, stopped_at, took, waiting, asked, sum(len(sim.requests) for sim in sims)

    finished, stopped_at, took, waiting, asked, asked_later = run(scenario())
    assert waiting >= 3  # polls were waiting out their jitter when the collector stopped
    assert took < 2  # stop does not wait for them
    assert all(result.started_at < stopped_at for result in finished)
    assert asked_later == asked  # none of them reached a meter afterwards
