"""The one writer: every reading the collector gets goes to the store through here, in batches.

Polls and push messages `submit` their readings and wait; one task collects what arrives
within ``[collector] write_interval`` (or ``write_batch`` readings) and runs one
`Ingestor.submit` for all of it in a worker thread, so a sweep of 2000 meters is a handful of
transactions and the store (SQLite above all) sees one writer. The verdicts are handed back
to each submitter.

Store and forward: when the store raises `StoreError` (`StoreUnavailable` when it cannot be
reached), the batch goes to the `ReadingBuffer` and `submit` returns ``buffered`` — durably
kept, which is what the MQTT driver waits for before acknowledging. While the buffer holds
anything, new readings are appended behind it, so readings reach the store in the order they
came. The same task retries the buffer after ``store_retry``, doubling up to
``store_retry_max``, and deletes rows only after the store committed them. Health records
(`HealthBook`) are saved on the same task after each batch while the store is reachable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from amr.collector.buffer import ReadingBuffer
from amr.collector.health import HealthBook
from amr.core.domain import IncomingReading
from amr.errors import StoreError, StoreUnavailable
from amr.ingest.ingestor import Ingestor
from amr.store.health import save_health
from amr.validation import BatchResult
from amr.validation.pipeline import Summary

log = logging.getLogger("amr.collector")
DRAIN_CHUNKS = 20  # buffer chunks written per turn of the loop before new readings are looked at
QUARANTINE_AFTER = 3  # a single buffered row the store refuses this many times is set aside


@dataclass(slots=True)
class Delivery:
    """What became of one submitter's readings: the verdicts, or kept in the buffer."""

    summary: Summary = field(default_factory=Summary)
    buffered: bool = False


@dataclass(slots=True)
class _Job:
    readings: list[IncomingReading]
    done: asyncio.Future[Delivery]
    arrived: float


@dataclass(slots=True)
class _Flush:
    done: asyncio.Future[None]
    drain: bool


DrainOutcome = Literal["empty", "more", "failed"]


class Writer:
    """Serialises and batches store writes; buffers while the store is away."""

    def __init__(
        self,
        ingestor: Ingestor,
        buffer: ReadingBuffer,
        health: HealthBook | None = None,
        *,
        interval: float = 0.2,
        batch: int = 500,
        retry: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        """Times in seconds: `interval` to gather a batch, `retry`..`retry_max` between buffer attempts."""
        self.ingestor = ingestor
        self.buffer = buffer
        self.health = health
        self.interval, self.batch = interval, batch
        self.retry, self.retry_max = retry, retry_max
        self.transactions = 0  # store transactions made for submitted readings (for tests and metrics)
        self._jobs: list[_Job] = []
        self._flushes: list[_Flush] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._delay = retry
        self._due = 0.0  # loop time of the next buffer attempt
        self._outage = False  # the last store call failed
        self._suspect = False  # the buffer's head chunk was refused: try row by row
        self._strikes = 0
        self._closing = False
        self._hurry = False  # write what is there without waiting for the batch to fill

    @property
    def buffered(self) -> int:
        """Readings waiting in the buffer."""
        return len(self.buffer)

    def start(self) -> None:
        """Start the writer task on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="amr-writer")
            if len(self.buffer):
                log.info("%d reading(s) wait in the buffer %s; writing them first", len(self.buffer), self.buffer.path)

    async def submit(self, readings: Sequence[IncomingReading], *, last: bool = False) -> Delivery:
        """Store `readings` (or buffer them durably) and return the verdicts; returns once that is done.

        `last`: nothing else is on its way (the last poll of a sweep): write without waiting for
        the batch to fill."""
        if self._task is None or self._task.done() or self._closing:
            raise RuntimeError("the writer is not running")
        if not readings:
            return Delivery()
        loop = asyncio.get_running_loop()
        job = _Job(list(readings), loop.create_future(), loop.time())
        self._jobs.append(job)
        self._hurry = self._hurry or last
        self._wake.set()
        return await job.done

    async def flush(self, drain: bool = False) -> None:
        """Wait until everything submitted so far is written or buffered and health is saved;
        with `drain`, also try once to write the whole buffer."""
        if self._task is None or self._task.done():
            return
        flush = _Flush(asyncio.get_running_loop().create_future(), drain)
        self._flushes.append(flush)
        self._wake.set()
        await flush.done

    async def close(self) -> int:
        """Flush, try the buffer once, stop; the readings still in the buffer."""
        await self.flush(drain=True)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        return len(self.buffer)

    def nudge(self) -> None:
        """Have the writer look for work now (e.g. health records to save)."""
        self._wake.set()

    async def _sleep(self, timeout: float | None) -> None:
        """Wait for `nudge`/new work or `timeout` (asyncio.wait: a cancellation is never swallowed)."""
        if not self._wake.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=timeout)
            finally:
                waiter.cancel()
        self._wake.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing or self._jobs or self._flushes:
            if not self._jobs and not self._flushes:
                waiting = len(self.buffer) > 0
                await self._sleep(max(0.0, self._due - loop.time()) if waiting else None)
            while self._jobs and not (self._flushes or self._hurry) and self._pending() < self.batch:
                remaining = self._jobs[0].arrived + self.interval - loop.time()
                if remaining <= 0:
                    break
                await self._sleep(remaining)
            jobs, self._jobs, self._hurry = self._jobs, [], False
            flushes, self._flushes = self._flushes, []
            try:
                await self._turn(loop, jobs, any(f.drain for f in flushes))
            except Exception:  # a bug must not end the one writer
                log.exception("the collector's writer failed; it carries on")
            for flush in flushes:
                if not flush.done.done():
                    flush.done.set_result(None)

    def _pending(self) -> int:
        return sum(len(job.readings) for job in self._jobs)

    async def _turn(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], drain: bool) -> None:
        if jobs:
            await self._write(jobs)
        if len(self.buffer) and (loop.time() >= self._due or drain):
            await self._forward(loop, until_empty=drain)
        await self._save_health()

    async def _write(self, jobs: list[_Job]) -> None:
        readings = [r for job in jobs for r in job.readings]
        try:
            result = await asyncio.to_thread(self._write_sync, readings)
        except Exception as exc:  # the buffer itself failed, or a bug: tell every submitter
            log.error("readings of %d poll(s) could not be stored or buffered: %s", len(jobs), exc)
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(exc)
            return
        start = 0
        for job in jobs:
            delivery = Delivery(buffered=result is None)
            if result is not None:
                delivery.summary.add(BatchResult(outcomes=result.outcomes[start : start + len(job.readings)]))
            start += len(job.readings)
            if not job.done.done():
                job.done.set_result(delivery)

    def _write_sync(self, readings: list[IncomingReading]) -> BatchResult | None:
        """Verdicts of the batch, or None when it went to the buffer."""
        if len(self.buffer):
            self.buffer.append(readings)
            return None
        try:
            result = self.ingestor.submit(readings)
        except StoreError as exc:
            self.buffer.append(readings)
            self._store_failed(exc, len(readings))
            return None
        self.transactions += 1
        self._outage = False
        return result

    def _store_failed(self, exc: StoreError, count: int) -> None:
        if not self._outage:
            kind = "unreachable" if isinstance(exc, StoreUnavailable) else "refused the write"
            log.warning(
                "the store is %s (%s); %d reading(s) kept in the buffer %s, retrying",
                kind, exc, count, self.buffer.path,
            )
        else:
            log.debug("the store is still failing: %s", exc)
        self._outage = True

    async def _forward(self, loop: asyncio.AbstractEventLoop, until_empty: bool) -> None:
        while True:
            before = len(self.buffer)
            try:
                outcome = await asyncio.to_thread(self._drain_sync)
            except StoreError as exc:  # the buffer file itself
                log.error("%s", exc)
                outcome = "failed"
            if outcome == "failed":
                self._due = loop.time() + self._delay
                self._delay = min(self._delay * 2, self.retry_max)
                return
            self._delay = self.retry
            if outcome == "empty":
                if before:
                    log.info("the store is back: the buffer is empty")
                return
            if not until_empty:
                self._due = loop.time()  # more to do: the next turn of the loop continues
                return

    def _drain_sync(self) -> DrainOutcome:
        """Write up to `DRAIN_CHUNKS` chunks of the buffer in order."""
        for _ in range(DRAIN_CHUNKS):
            rows = self.buffer.head(1 if self._suspect else self.batch)
            if not rows:
                return "empty"
            try:
                self.ingestor.submit([reading for _, reading in rows])
            except StoreUnavailable as exc:
                self._store_failed(exc, len(self.buffer))
                return "failed"
            except StoreError as exc:
                self._store_failed(exc, len(self.buffer))
                if len(rows) > 1:
                    self._suspect = True  # find the row the store refuses
                    return "failed"
                self._strikes += 1
                if self._strikes < QUARANTINE_AFTER:
                    return "failed"
                log.error("buffered reading of meter %s refused %d times, set aside: %s",
                          rows[0][1].meter, self._strikes, exc)
                self.buffer.quarantine(rows[0][0], str(exc))
                self._strikes = 0
                continue
            self.transactions += 1
            if self._outage:
                log.info("the store is reachable again; writing %d buffered reading(s)", len(self.buffer))
            self._outage = False
            self.buffer.delete([row_id for row_id, _ in rows])
            self._suspect, self._strikes = False, 0
        return "more" if len(self.buffer) else "empty"

    async def _save_health(self) -> None:
        if self.health is None or len(self.buffer) or self._outage:
            return
        records = self.health.take_dirty()
        if not records:
            return
        try:
            await asyncio.to_thread(save_health, self.ingestor.store, records)
        except StoreError as exc:
            self.health.put_back(records)
            log.debug("health not saved yet: %s", exc)
