"""Back-fill: read from each meter's profile memory the intervals the service does not have yet.

Per meter and channel the store keeps ``read_until`` (`amr.store.backfill_state`): every interval
before it was read from the meter, or declared lost. A meter never back-filled starts at its
memory depth back from now (``[backfill] first`` when shorter), not before its installation.
What is missing is then [read_until, the start of the running interval):

* the part older than the meter's memory reaches now (``now − depth``) is **lost**: reported once
  (`BackfillState.lose`) and never asked for again;
* the rest is read oldest first in chunks of at most ``[backfill] chunk``; after each chunk the
  intervals are written (`Store.write_intervals`: idempotent, a measured value replaces an
  estimate) and only then ``read_until`` moves to the chunk's end, so a restart resumes at the
  first chunk not yet written and a chunk read twice is only duplicates.

An interval the meter holds no record of (it had no power) is not retried: it was asked for, and
the answer was "nothing"; the gap stays for estimation. A failed chunk leaves ``read_until`` where
it was, notes the error, and is tried again on the next turn; within a turn a transient error
(no answer, a garbled one) is retried as a poll is (the meter's or its bus's ``retries``, backoff).

Priority: each chunk is one turn on the meter's bus, taken through `hold` — in the collector the
bus's background queue (`BusSlots.hold(background=True)`), served only when no scheduled poll or
retry is waiting, so regular reading is never starved: a poll waits at most one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from amr.app import App
from amr.collector.bus import describe
from amr.collector.retry import RetryPolicy, is_transient
from amr.config import BackfillConfig, BusConfig, MeterConfig
from amr.core.domain import CHANNELS, Channel
from amr.core.intervals import DEFAULT_INTERVAL, floor_interval
from amr.drivers.profiles import ProfileReader, to_intervals
from amr.errors import AmrError, DriverError, InputError
from amr.store.backfill_state import BackfillState, ChannelProgress

log = logging.getLogger("amr.backfill")
Hold = Callable[[], AbstractAsyncContextManager[None]]
Progress = Callable[["ChunkDone"], None]


@contextlib.asynccontextmanager
async def no_hold() -> AsyncIterator[None]:
    """A turn on a bus nobody else uses (the `amr backfill` command on its own)."""
    yield


@dataclass(frozen=True, slots=True)
class Plan:
    """What one meter is missing now: a lost part (older than its memory) and the ranges to read."""

    serial: str
    lost: tuple[datetime, datetime] | None
    chunks: list[tuple[datetime, datetime]]

    @property
    def span(self) -> timedelta:
        """The length of all chunks together."""
        return sum((end - start for start, end in self.chunks), timedelta(0))


@dataclass(frozen=True, slots=True)
class ChunkDone:
    """One chunk read (or failed), for a progress display."""

    serial: str
    start: datetime
    end: datetime
    records: int
    error: str | None


@dataclass(slots=True)
class MeterReport:
    """The outcome of one meter's back-fill run."""

    serial: str
    read_from: datetime | None = None
    read_until: datetime | None = None
    records: int = 0
    intervals: int = 0
    written: int = 0
    duplicate: int = 0
    refused: int = 0
    chunks: int = 0
    lost: tuple[datetime, datetime] | None = None
    error: str | None = None
    reads: list[ChunkDone] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""

        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "meter": self.serial,
            "from": iso(self.read_from),
            "until": iso(self.read_until),
            "chunks": self.chunks,
            "records": self.records,
            "intervals": self.intervals,
            "written": self.written,
            "duplicate": self.duplicate,
            "refused": self.refused,
            "lost": None if self.lost is None else {"from": iso(self.lost[0]), "until": iso(self.lost[1])},
            "error": self.error,
        }


def memory_depth(config: BackfillConfig, meter: MeterConfig, bus: BusConfig, reader: ProfileReader) -> timedelta:
    """The meter's ``profile_depth``, else ``[backfill] depth`` by model then bus kind, else the driver's."""
    own = getattr(meter.settings, "profile_depth", None)
    if isinstance(own, timedelta):
        return own
    for key in (meter.model, bus.kind):
        if key and key in config.depth:
            return config.depth[key]
    return reader.memory_depth(meter)


def plan(
    serial: str,
    progress: dict[Channel, ChannelProgress] | None,
    *,
    now: datetime,
    depth: timedelta,
    chunk: timedelta,
    first: timedelta | None = None,
    installed: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    length: timedelta = DEFAULT_INTERVAL,
) -> Plan:
    """The lost part and the chunks to read for one meter (pure: no I/O).

    `start` / `end` narrow (or, for `start`, widen back to) the range; by default it runs from
    ``read_until`` (the earliest of the channels) to the start of the running interval.
    """
    if chunk < length:
        raise InputError(f"a back-fill chunk is at least one interval ({length}); got {chunk}")
    horizon = floor_interval(now, length)  # the running interval is not finished
    oldest = now - depth  # the meter's memory reaches back to here
    held_from = floor_interval(oldest, length) + length  # the first interval the memory still holds
    if progress:
        begin = min(p.read_until for p in progress.values())
    else:  # a new meter: nothing is lost that was never asked for
        begin = max(held_from, floor_interval(now - first, length)) if first is not None else held_from
        if installed is not None:
            begin = max(begin, installed)
    if start is not None:
        begin = start
    begin = floor_interval(begin, length)
    stop = horizon if end is None else min(horizon, floor_interval(end, length))
    lost = None
    # The interval holding `oldest` is already overwritten (the ring keeps depth / length records,
    # the running one among them); the first one held starts one interval later.
    cut = min(stop, held_from)
    if begin < cut:
        lost = (begin, cut)
        begin = cut
    chunks = []
    while begin < stop:
        chunks.append((begin, min(stop, begin + chunk)))
        begin = chunks[-1][1]
    return Plan(serial, lost, chunks)


class Backfill:
    """Back-fill for the meters of one application; one instance per process."""

    def __init__(self, app: App, *, clock: Callable[[], datetime] | None = None) -> None:
        """Use `app`'s store and ``[backfill]`` settings."""
        self.app = app
        self.config = app.config.backfill
        self.state = BackfillState(app.store)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.buses = {bus.name: bus for bus in app.config.buses}

    def plan_for(
        self, meter: MeterConfig, reader: ProfileReader, start: datetime | None = None, end: datetime | None = None
    ) -> Plan:
        """The meter's plan now, from its stored progress."""
        progress = self.state.load([meter.serial]).get(meter.serial)
        known = self.app.meters.get(meter.serial)
        return plan(
            meter.serial,
            progress,
            now=self.clock(),
            depth=memory_depth(self.config, meter, self.buses[meter.bus or ""], reader),
            chunk=self.config.chunk,
            first=self.config.first,
            installed=None if known is None else known.installed,
            start=start,
            end=end,
        )

    async def run_meter(
        self,
        meter: MeterConfig,
        reader: ProfileReader,
        *,
        hold: Hold = no_hold,
        start: datetime | None = None,
        end: datetime | None = None,
        progress: Progress | None = None,
        stopping: asyncio.Event | None = None,
    ) -> MeterReport:
        """Declare lost what the memory no longer holds, then read the missing chunks oldest first."""
        report = MeterReport(meter.serial)
        the_plan = await asyncio.to_thread(self.plan_for, meter, reader, start, end)
        channels: Sequence[Channel] = CHANNELS
        now = self.clock()
        first_start = the_plan.lost[0] if the_plan.lost else the_plan.chunks[0][0] if the_plan.chunks else None
        if first_start is not None:
            await asyncio.to_thread(self.state.begin, meter.serial, channels, first_start, now)
        if the_plan.lost is not None:
            await asyncio.to_thread(self.state.lose, meter.serial, channels, *the_plan.lost, now)
            report.lost = the_plan.lost
            log.warning(
                "meter %s: intervals %s .. %s are older than its profile memory: not recoverable",
                meter.serial, the_plan.lost[0].isoformat(), the_plan.lost[1].isoformat(),
            )  # fmt: skip
        for chunk_start, chunk_end in the_plan.chunks:
            if stopping is not None and stopping.is_set():
                break
            done = await self._chunk(meter, reader, hold, chunk_start, chunk_end, report)
            report.reads.append(done)
            if progress is not None:
                progress(done)
            if done.error is not None or done.end < chunk_end:
                break  # the next turn tries again from here (after an error, or once the meter closed them)
        return report

    async def _chunk(
        self,
        meter: MeterConfig,
        reader: ProfileReader,
        hold: Hold,
        start: datetime,
        end: datetime,
        report: MeterReport,
    ) -> ChunkDone:
        policy = RetryPolicy.for_meter(meter, self.buses[meter.bus or ""])
        try:
            for attempt in range(1, policy.attempts + 1):
                try:
                    async with hold():  # a retry waits for its turn again: polls go first
                        records = await reader.read_profile(meter, start, end)
                    break
                except DriverError as exc:
                    if attempt == policy.attempts or not is_transient(exc):
                        raise
                    await asyncio.sleep(policy.delay(attempt))
        except (DriverError, AmrError, OSError, TimeoutError) as exc:
            error = describe(exc)
            report.error = error
            await asyncio.to_thread(self.state.fail, meter.serial, error, self.clock())
            return ChunkDone(meter.serial, start, end, 0, error)
        received = self.clock()
        final = getattr(records, "complete_until", None)
        if final is not None and final < end:  # the meter has not closed these intervals yet (its clock)
            end = max(start, floor_interval(final))
        inside = [r for r in records if start <= r.start < end]
        values = to_intervals(meter.serial, inside, self.app.meters.get(meter.serial), received)
        result = await asyncio.to_thread(self.app.store.write_intervals, values,
                                       check=self.app.interval_rules(), now=received)
        await asyncio.to_thread(self.state.advance, meter.serial, CHANNELS, start, end, received)
        report.chunks += 1
        report.records += len(inside)
        report.intervals += len(values)
        report.written += result.accepted + result.replaced
        report.duplicate += result.duplicate
        report.refused += len(result.refused)
        report.read_from = report.read_from or start
        report.read_until = end
        return ChunkDone(meter.serial, start, end, len(inside), None)
