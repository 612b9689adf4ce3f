"""Readings in: validate a batch with the pipeline and write it in the same transaction.

This is the one write path of readings: `Ingestor.judge` runs the pipeline inside a write
transaction (`Store.write`), whose context load first takes the locks of the batch's
series, so no other writer, in this process or another, changes those series between
the verdict and the write. The retry on a conflict lives in `Store.write`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from amr.core.domain import IncomingReading
from amr.core.meters import Meter
from amr.store import Session, Store
from amr.validation import BatchResult, ContextLoader, Pipeline


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

    def pipeline(self, loader: ContextLoader) -> Pipeline:
        """The VEE pipeline over this ingestor's meters, reading context from `loader`."""
        return Pipeline(self.meters, loader, self.clock_tolerance, self.now, self.tz)

    def preview(self, batch: Sequence[IncomingReading]) -> BatchResult:
        """Judge readings without storing anything (the cabinet's "Рассчитать")."""
        return self.pipeline(self.store).run(batch)

    def judge(self, session: Session, batch: Sequence[IncomingReading]) -> BatchResult:
        """Judge a batch inside a write transaction, holding the locks of its series (taken before
        the context is loaded); the caller writes in the same transaction."""
        return self.pipeline(session).run(batch)

    def submit(self, batch: Sequence[IncomingReading]) -> BatchResult:
        """Judge and store a batch in one transaction under its series locks; judged again if a
        concurrent writer still interfered (a conflict), see `Store.write`."""

        def work(session: Session) -> BatchResult:
            result = self.judge(session, batch)
            session.write(result)
            return result

        return self.store.write(work)
