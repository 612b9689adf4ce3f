"""Bulk ingest: validate the next batch while the previous one is being written.

Within one `BulkIngest.run` the accepted tail of every series this run has seen is
kept in memory, so a batch that only extends those series is judged without a
database round trip and without waiting for the previous batch's write. A batch that
needs the database asks it: at once for series no earlier batch of this run touched (a
file by meter brings new meters in every batch: their judging overlaps the writing of the
batch before), and for a back-fill of a series already seen only once every earlier batch
is written. If a write fails, the writer stops, the
failed batch and every later one are judged again against the database and written
one by one: nothing is lost or doubled.

Another process may write the same meters meanwhile (a second import, the API, a
collector). So each batch is written in a transaction that first takes the locks of its
series and checks that the readings it was judged against are still those in the database
(one query in the writer thread, overlapped with judging the next batch, fetching only the
readings that context consists of: usually the previous one of each series); when any
differs, the batch is judged again there, under the locks, and the in-memory tails of its
series are dropped.
"""

from __future__ import annotations

import functools
import itertools
import operator
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat

from amr.core.domain import CHANNELS, Channel, IncomingReading, StoredReading
from amr.core.gc_policy import paused_gc
from amr.ingest.ingestor import Ingestor
from amr.store import Session
from amr.validation import BatchResult, ContextRequest, Summary
from amr.validation.pipeline import SeriesKey

Context = dict[SeriesKey, list[StoredReading]]
_Item = tuple[list[IncomingReading], BatchResult, list[ContextRequest], Context]
_METER_ID = operator.attrgetter("meter_id")
_TARIFF = operator.attrgetter("tariff")
_TS = operator.attrgetter("ts")
_VALUES = operator.attrgetter("values")


@dataclass(slots=True)
class _Tail:
    """The newest accepted reading of each channel of one series, when nothing newer is stored."""

    last: dict[Channel, StoredReading] = field(default_factory=dict)

    @property
    def newest(self) -> StoredReading | None:
        return max(self.last.values(), key=lambda r: r.ts, default=None)

    def extend(self, reading: StoredReading) -> None:
        for channel in CHANNELS:
            if reading.values.get(channel) is not None:
                self.put(channel, reading)

    def put(self, channel: Channel, reading: StoredReading) -> None:
        """Take `reading` as the newest of `channel` (which it has) unless a newer one is held."""
        held = self.last.get(channel)
        if held is None or held.ts < reading.ts:
            self.last[channel] = reading


class _TailLoader:
    """Answers from the in-memory tails where it can; otherwise waits for the writer and asks the store."""

    def __init__(self, ingestor: Ingestor, wait_for_writes: Callable[[], None]) -> None:
        self.ingestor = ingestor
        self.wait_for_writes = wait_for_writes
        self.tails: dict[SeriesKey, _Tail] = {}
        self.seen: tuple[list[ContextRequest], Context] = ([], {})
        self.handed: set[SeriesKey] = set()  # series of the batches judged so far (handed to the writer)
        self._stale: set[SeriesKey] = set()
        self._stale_lock = threading.Lock()

    def invalidate(self, keys: Iterable[SeriesKey]) -> None:
        """Forget the tails of `keys` (another writer changed those series); safe from another thread."""
        with self._stale_lock:
            self._stale.update(keys)

    def take_seen(self) -> tuple[list[ContextRequest], Context]:
        """The requests of the last `load_context` and what it answered (what a batch was judged against)."""
        seen, self.seen = self.seen, ([], {})
        return seen

    def load_context(self, requests: Sequence[ContextRequest]) -> Context:
        with self._stale_lock:
            stale, self._stale = self._stale, set()
        for key in stale:
            self.tails.pop(key, None)
        found: Context = {}
        missing = []
        for request in requests:
            key = (request.meter_id, request.tariff)
            tail = self.tails.get(key)
            newest = tail.newest if tail is not None else None
            if tail is not None and (newest is None or newest.ts < request.start):
                found[key] = list({r.ts: r for r in tail.last.values()}.values())
            else:
                missing.append(request)
        if missing:
            handed = self.handed
            if any((r.meter_id, r.tariff) in handed for r in missing):
                # an earlier batch may still be writing these series; a series no batch of this run has
                # touched is asked for at once (another process's writes are caught by the writer's check)
                self.wait_for_writes()
            loaded = self.ingestor.store.load_context(missing)
            for request in missing:
                key = (request.meter_id, request.tariff)
                readings = loaded.get(key, [])
                found[key] = readings
                if any(r.ts > request.end for r in readings):
                    self.tails.pop(key, None)  # something newer is stored: keep asking the store
                else:
                    tail = self.tails[key] = _Tail()
                    for reading in readings:
                        tail.extend(reading)
        self.seen = (list(requests), found)
        self.handed.update((r.meter_id, r.tariff) for r in requests)
        return found

    def remember(self, result: BatchResult) -> None:
        """Extend the tails with a judged batch's accepted readings."""
        accepted = result.accepted
        if accepted and self.tails:
            keys = list(zip(map(_METER_ID, accepted), map(_TARIFF, accepted), strict=True))
            if _in_runs(keys, list(map(_TS, accepted))):
                self._remember_runs(keys, accepted)
            else:
                tails = self.tails
                for key, reading in zip(keys, accepted, strict=True):
                    tail = tails.get(key)
                    if tail is not None:
                        tail.extend(reading)
        if result.flag_updates:
            for key in {(r.meter_id, r.tariff) for r in result.flag_updates.values()}:
                self.tails.pop(key, None)

    def _remember_runs(self, keys: list[SeriesKey], accepted: list[StoredReading]) -> None:
        """`remember` for readings in runs (see `_in_runs`): the last of a series having a channel is
        its newest with it, so each tail takes at most one reading per channel. Only a channel that
        the last reading of some series lacks needs a look at the others."""
        tails = self.tails
        last = dict(zip(keys, accepted, strict=True))  # the last of a key wins
        lacking = {c for r in last.values() for c in CHANNELS if r.values.get(c) is None}
        value_maps = list(map(_VALUES, accepted)) if lacking else []
        for channel in CHANNELS:
            if channel in lacking:
                values = list(map(dict.get, value_maps, repeat(channel)))
                if values.count(None) == len(values):  # a channel the batch has none of (a file without A-)
                    continue
                has = list(map(operator.is_not, values, repeat(None)))
                newest = dict(zip(compress(keys, has), compress(accepted, has), strict=True))
            else:
                newest = last
            for key, reading in newest.items():
                tail = tails.get(key)
                if tail is not None:
                    tail.put(channel, reading)


def _in_runs(keys: list[SeriesKey], times: list[object]) -> bool:
    """True when the readings of each series are consecutive and in time order (as the pipeline
    accepts them: a series' run at a time, sorted); then the last of a series is its newest."""
    changes = list(map(operator.ne, keys, keys[1:]))
    if sum(changes) + 1 != len(set(keys)):
        return False
    return all(map(operator.or_, changes, map(operator.lt, times, times[1:])))  # type: ignore[arg-type]


class BulkIngest:
    """Validate and write a long stream of readings with validation and writing overlapped."""

    def __init__(self, ingestor: Ingestor, batch_size: int = 20_000) -> None:
        self.ingestor = ingestor
        self.batch_size = batch_size
        self.rejudged = 0  # batches judged again under their locks (another writer changed their series)

    def run(
        self, readings: Iterable[IncomingReading], progress: Callable[[int], None] | None = None
    ) -> Summary:
        """Ingest everything; returns the counts. Progress is reported as batches are written."""
        with paused_gc():  # parsing, judging and writing make a million short-lived objects, no cycles
            return self._run(readings, progress)

    def _run(self, readings: Iterable[IncomingReading], progress: Callable[[int], None] | None) -> Summary:
        summary = Summary()
        pending: queue.Queue[_Item | None] = queue.Queue(maxsize=2)
        written = threading.Condition()
        state: dict[str, object] = {"queued": 0, "done": 0, "failed": None}
        failed_batches: list[list[IncomingReading]] = []
        loader = _TailLoader(self.ingestor, lambda: wait_for_writes())

        def write(session: Session, batch: list[IncomingReading], result: BatchResult,
                  requests: list[ContextRequest], seen: Context) -> BatchResult:
            if requests and session.changed(requests, seen):  # the batch's series locked, then checked
                self.rejudged += 1
                loader.invalidate((r.meter_id, r.tariff) for r in requests)
                result = self.ingestor.judge(session, batch)
            session.write(result)
            return result

        def writer() -> None:
            while (item := pending.get()) is not None:
                batch, result, requests, seen = item
                if state["failed"] is None:
                    try:
                        done = self.ingestor.store.write(
                            functools.partial(write, batch=batch, result=result, requests=requests, seen=seen)
                        )
                        summary.add(done)
                        if progress:
                            progress(len(batch))
                    except Exception as exc:  # every later batch is redone synchronously
                        state["failed"] = exc
                if state["failed"] is not None:
                    failed_batches.append(batch)
                with written:
                    state["done"] = int(state["done"]) + 1  # type: ignore[call-overload]
                    written.notify_all()

        def wait_for_writes() -> None:
            with written:
                written.wait_for(lambda: state["done"] == state["queued"])

        pipeline = self.ingestor.pipeline(loader)
        thread = threading.Thread(target=writer, name="amr-bulk-writer", daemon=True)
        thread.start()
        try:
            for batch in _batches(readings, self.batch_size):
                if state["failed"] is not None:
                    failed_batches.append(batch)
                    continue
                result = pipeline.run(batch)
                requests, seen = loader.take_seen()
                loader.remember(result)
                state["queued"] = int(state["queued"]) + 1  # type: ignore[call-overload]
                pending.put((batch, result, requests, seen))
        finally:
            pending.put(None)
            thread.join()
        for batch in failed_batches:
            result = self.ingestor.submit(batch)
            summary.add(result)
            if progress:
                progress(len(batch))
        return summary


def _batches(readings: Iterable[IncomingReading], size: int) -> Iterable[list[IncomingReading]]:
    stream = iter(readings)
    while batch := list(itertools.islice(stream, size)):
        yield batch
