"""Storage: SQLite (embedded), PostgreSQL (COPY) and TimescaleDB behind one `Store`."""

from amr.store.backfill_state import BackfillState, ChannelProgress
from amr.store.intervals import IntervalRefusal, IntervalRevision, IntervalWriteResult
from amr.store.store import RejectedRecord, Session, Store, StoreConflict

__all__ = [
    "BackfillState",
    "ChannelProgress",
    "IntervalRefusal",
    "IntervalRevision",
    "IntervalWriteResult",
    "RejectedRecord",
    "Session",
    "Store",
    "StoreConflict",
]
