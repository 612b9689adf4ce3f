"""Readings in: validate a batch with the pipeline and write it in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from amr.domain import IncomingReading
from amr.meters import Meter
from amr.store import Store, StoreConflict
from amr.validation import BatchResult, Pipeline

RETRIES_ON_CONFLICT = 3


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ingestor:
    """Every reading, whatever its source, goes through here into the store."""

    def __init__(
        self,
        store: Store,
        meters: Sequence[Meter],
        clock_tolerance: timedelta = timedelta(minutes=5),
        now: Callable[[], datetime] = _utcnow,
        tz: tzinfo = UTC,
    ) -> None:
        self.store = store
        self.meters = {m.serial: m for m in meters}
        self.clock_tolerance = clock_tolerance
        self.now = now
        self.tz = tz  # the site's zone, for the times in refusal messages

    def preview(self, batch: Sequence[IncomingReading]) -> BatchResult:
        """Judge readings without storing anything (the cabinet's "Рассчитать")."""
        return Pipeline(self.meters, self.store, self.clock_tolerance, self.now, self.tz).run(batch)

    def submit(self, batch: Sequence[IncomingReading]) -> BatchResult:
        """Judge and store a batch in one transaction; re-judge if a concurrent writer interfered."""
        for attempt in range(RETRIES_ON_CONFLICT):
            try:
                with self.store.session() as session:
                    result = Pipeline(self.meters, session, self.clock_tolerance, self.now, self.tz).run(batch)
                    session.write(result)
                return result
            except StoreConflict:
                if attempt == RETRIES_ON_CONFLICT - 1:
                    raise
        raise AssertionError("unreachable")
