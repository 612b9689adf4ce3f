"""Storage: SQLite (embedded), PostgreSQL (COPY) and TimescaleDB behind one `Store`."""

from amr.store.store import RejectedRecord, Session, Store, StoreConflict

__all__ = ["RejectedRecord", "Session", "Store", "StoreConflict"]
