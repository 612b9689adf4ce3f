"""The writer batches submissions into few transactions and keeps readings in the buffer while the store is away;
the buffer keeps readings exactly and in order."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from amr.collector.buffer import ReadingBuffer, decode, encode
from amr.collector.writer import Writer
from amr.core.domain import Channel, IncomingReading, Source
from amr.errors import StoreError, StoreUnavailable
from amr.ingest.ingestor import Ingestor
from amr.validation import BatchResult, Outcome, Reason

T = TypeVar("T")
T0 = datetime(2026, 1, 15, 9, 30, 0, 123456, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


def reading(n: int, meter: str = "M1") -> IncomingReading:
    return IncomingReading(
        meter=meter,
        ts=T0 + timedelta(seconds=n),
        tariff=0,
        values={Channel.A_PLUS: 10**15 + n, Channel.R_MINUS: None},
        source=Source.MODBUS,
        payload={"n": n, "nested": {"wh": [1, 2, 3]}},
        received_at=T0,
    )


class FakeIngestor:
    """Stores in a list; can be made unreachable or to refuse one meter's readings."""

    def __init__(self) -> None:
        self.stored: list[IncomingReading] = []
        self.transactions = 0
        self.down = False
        self.poison: str | None = None
        self.store = None

    def submit(self, batch: Sequence[IncomingReading]) -> BatchResult:
        if self.down:
            raise StoreUnavailable("connection refused")
        if self.poison and any(r.meter == self.poison for r in batch):
            raise StoreError("value out of range")
        self.transactions += 1
        outcomes = []
        for r in batch:
            seen = any(s.meter == r.meter and s.ts == r.ts for s in self.stored)
            if r.meter == "unknown":
                outcomes.append(Outcome("rejected", (Reason.UNKNOWN_METER,)))
            else:
                outcomes.append(Outcome("duplicate" if seen else "accepted"))
                if not seen:
                    self.stored.append(r)
        return BatchResult(outcomes=outcomes)


def writer(tmp_path: Path, ingestor: FakeIngestor, **options: Any) -> Writer:
    settings = {"interval": 0.05, "batch": 500, "retry": 0.05, "retry_max": 0.2, **options}
    return Writer(cast(Ingestor, ingestor), ReadingBuffer(tmp_path / "buffer.sqlite"), **settings)


def test_readings_arriving_together_share_a_transaction(tmp_path: Path) -> None:
    ingestor = FakeIngestor()

    async def scenario() -> None:
        w = writer(tmp_path, ingestor)
        w.start()
        deliveries = await asyncio.gather(*(w.submit([reading(n)]) for n in range(2000)))
        assert all(d.summary.accepted == 1 and not d.buffered for d in deliveries)
        mixed = await w.submit([reading(5000), reading(0), reading(1, meter="unknown")])
        assert (mixed.summary.accepted, mixed.summary.duplicate, dict(mixed.summary.rejected)) == (
            1, 1, {"unknown_meter": 1},
        )
        await w.close()

    run(scenario())
    assert len(ingestor.stored) == 2001
    assert ingestor.transactions <= 6  # 2000 readings in batches of 500, not 2000 transactions


def test_the_last_submission_of_a_sweep_is_written_without_waiting_for_a_batch(tmp_path: Path) -> None:
    ingestor = FakeIngestor()

    async def scenario() -> tuple[float, float]:
        w = writer(tmp_path, ingestor, interval=5.0)
        w.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await w.submit([reading(1)], last=True)
        alone = loop.time() - started
        started = loop.time()
        waiting = asyncio.create_task(w.submit([reading(2)]))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # an ordinary submission waits for company, up to the interval
        await w.submit([reading(3)], last=True)  # ... until the last one of the sweep comes
        await waiting
        together = loop.time() - started
        await w.close()
        return alone, together

    alone, together = run(scenario())
    assert alone < 1.0 and together < 1.0
    assert ingestor.transactions == 2  # the second and third went together


def test_store_away_readings_buffered_then_written_in_order_once(tmp_path: Path) -> None:
    ingestor = FakeIngestor()

    async def scenario() -> None:
        w = writer(tmp_path, ingestor, retry=60, retry_max=60)  # no retry by itself within the test
        w.start()
        assert not (await w.submit([reading(0)])).buffered
        ingestor.down = True
        for n in range(1, 6):
            assert (await w.submit([reading(n)])).buffered
        assert w.buffered == 5
        ingestor.down = False
        assert (await w.submit([reading(6)])).buffered  # behind the buffered ones, to keep the order
        await w.flush(drain=True)
        assert w.buffered == 0
        assert not (await w.submit([reading(7)])).buffered  # the buffer is empty: straight to the store
        await w.close()

    run(scenario())
    assert [r.payload["n"] for r in ingestor.stored] == list(range(8))


def test_the_buffer_is_retried_with_backoff_until_the_store_is_back(tmp_path: Path) -> None:
    ingestor = FakeIngestor()

    async def scenario() -> None:
        w = writer(tmp_path, ingestor)
        w.start()
        ingestor.down = True
        for n in range(5):
            await w.submit([reading(n)])
        await asyncio.sleep(0.3)  # a few failed attempts, backing off
        ingestor.down = False
        for _ in range(100):
            if w.buffered == 0:
                break
            await asyncio.sleep(0.02)
        assert w.buffered == 0
        await w.close()

    run(scenario())
    assert [r.payload["n"] for r in ingestor.stored] == list(range(5))


def test_close_tries_the_buffer_once_and_keeps_what_is_left(tmp_path: Path) -> None:
    ingestor = FakeIngestor()
    ingestor.down = True

    async def scenario() -> int:
        w = writer(tmp_path, ingestor, retry=60, retry_max=60)
        w.start()
        await w.submit([reading(1), reading(2)])
        return await w.close()

    assert run(scenario()) == 2
    ingestor.down = False

    async def restart() -> int:  # the next run starts with the buffer
        w = writer(tmp_path, ingestor)
        w.start()
        return await w.close()

    assert run(restart()) == 0
    assert [r.payload["n"] for r in ingestor.stored] == [1, 2]


def test_a_row_the_store_refuses_for_good_is_set_aside(tmp_path: Path) -> None:
    ingestor = FakeIngestor()

    async def scenario() -> ReadingBuffer:
        w = writer(tmp_path, ingestor)
        w.start()
        ingestor.down = True
        await w.submit([reading(1), reading(2, meter="BAD"), reading(3)])
        ingestor.down, ingestor.poison = False, "BAD"
        for _ in range(200):
            if w.buffered == 0:
                break
            await asyncio.sleep(0.02)
        await w.close()
        return w.buffer

    buffer = run(scenario())
    assert [r.payload["n"] for r in ingestor.stored] == [1, 3]
    reopened = ReadingBuffer(buffer.path)
    assert len(reopened) == 0 and reopened.quarantined() == 1
    reopened.close()


def test_buffer_keeps_readings_exactly_in_order_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "var" / "buffer.sqlite"
    buffer = ReadingBuffer(path)
    readings = [reading(n) for n in range(3)]
    readings.append(IncomingReading("M2", None, 2, {}, Source.MQTT, {"payload": "garbled"}, ("payload: bad",)))
    buffer.append(readings)
    buffer.close()
    again = ReadingBuffer(path)
    assert len(again) == 4
    rows = again.head(10)
    assert [r for _, r in rows] == readings
    assert rows[0][1].values[Channel.A_PLUS] == 10**15  # exact, no float on the way
    assert rows[0][1].ts == T0 and rows[0][1].ts is not None and rows[0][1].ts.microsecond == 123456
    again.delete([rows[0][0], rows[1][0]])
    assert [r for _, r in again.head(10)] == readings[2:]
    assert decode(encode(readings[0])) == readings[0]
    again.close()
