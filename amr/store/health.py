"""Meter health as the collector keeps it (table ``meter_health``), and data completeness.

One row per meter: ``status`` (``online`` / ``degraded`` / ``offline``; ``unknown`` before the
first poll), the last poll, the last success, the last error and when, the run of consecutive
failed polls, and counters of polls and failed polls since the row was created. The rules that
move a meter between states live in `amr.collector.health`; this module only keeps them.

Completeness is a query, not a stored number: the readings stored for a meter in a period
against the polls its schedule makes in that period (`completeness`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from sqlalchemy import Connection, distinct, func, select
from sqlalchemy.dialects import postgresql, sqlite

from amr.config import ScheduleConfig
from amr.meters import Meter
from amr.store.models import MeterHealthRow, ReadingRow
from amr.store.store import Store, translate_errors

Status = Literal["unknown", "online", "degraded", "offline"]
STATUSES: tuple[Status, ...] = ("unknown", "online", "degraded", "offline")


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """The health of one meter (times in UTC)."""

    meter_id: int
    status: Status = "unknown"
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    polls: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON (datetimes as ISO 8601)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


_COLUMNS = tuple(HealthRecord.__dataclass_fields__)


def _record(row: Any) -> HealthRecord:
    return HealthRecord(**{name: row[name] for name in _COLUMNS})


def load_health(store: Store, meter_ids: Iterable[int] | None = None) -> dict[int, HealthRecord]:
    """The stored health of the meters (all when `meter_ids` is None), by meter id."""
    statement = select(MeterHealthRow)
    if meter_ids is not None:
        statement = statement.where(MeterHealthRow.meter_id.in_(list(meter_ids)))
    with translate_errors(), store.engine.connect() as conn:
        rows = conn.execute(statement).mappings().all()
    return {row["meter_id"]: _record(row) for row in rows}


def save_health(store: Store, records: Sequence[HealthRecord]) -> None:
    """Insert or replace the rows of `records` in one transaction."""
    if not records:
        return
    with translate_errors(), store.engine.begin() as conn:
        upsert_health(conn, records)


def upsert_health(conn: Connection, records: Sequence[HealthRecord]) -> None:
    """Insert or replace health rows on an open connection (SQLite and PostgreSQL)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(MeterHealthRow)
    updates = {name: statement.excluded[name] for name in _COLUMNS if name != "meter_id"}
    statement = statement.on_conflict_do_update(index_elements=["meter_id"], set_=updates)
    conn.execute(statement, [asdict(r) for r in records])


def readings_count(store: Store, meter: Meter, start: datetime, end: datetime) -> int:
    """Distinct reading times stored for `meter` with start <= ts < end (any tariff zone)."""
    statement = select(func.count(distinct(ReadingRow.ts))).where(
        ReadingRow.meter_id == meter.id, ReadingRow.ts >= start, ReadingRow.ts < end
    )
    with translate_errors(), store.engine.connect() as conn:
        return int(conn.execute(statement).scalar_one())


def completeness(
    store: Store, meter: Meter, schedule: ScheduleConfig, start: datetime, end: datetime, tz: tzinfo
) -> float:
    """Share (0..1) of the polls `schedule` makes in [start, end) that left a stored reading.

    Expected polls count the schedule's fire times in the site's zone `tz` (offset included,
    jitter not); stored readings count distinct timestamps of accepted readings. A period in
    which the schedule makes no poll is complete (1.0).
    """
    from amr.collector.schedule import expected_polls  # the scheduling rules live with the collector

    expected = expected_polls(schedule, start, end, tz)
    if expected == 0:
        return 1.0
    return min(1.0, readings_count(store, meter, start, end) / expected)


__all__ = [
    "STATUSES",
    "HealthRecord",
    "Status",
    "completeness",
    "load_health",
    "readings_count",
    "save_health",
    "upsert_health",
]
