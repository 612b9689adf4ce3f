"""Meter health as the collector keeps it (table ``meter_health``), and data completeness.

One row per meter: ``status`` (``online`` / ``degraded`` / ``offline``; ``unknown`` before the
first poll), the last poll, the last success, the last error and when, the run of consecutive
failed polls, and counters of polls and failed polls since the row was created. The rules that
move a meter between states live in `amr.collector.health`; this module only keeps them.

Completeness is a query, not a stored number: the readings stored for a meter in a period
against the polls its schedule makes in that period (`completeness`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from sqlalchemy import Connection, distinct, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from amr.config import ScheduleConfig
from amr.core.meters import Meter
from amr.store.intervals import IntervalCompleteness, interval_completeness
from amr.store.models import UTCDateTime, meter_health_table, readings_table
from amr.store.rows import listed_ids
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
    """The stored health of the meters (all when `meter_ids` is None), by meter id; a meter without
    a row has not been polled ("unknown")."""
    listed, wanted = listed_ids(meter_ids)
    statement = select(meter_health_table)
    if listed is not None:
        statement = statement.where(meter_health_table.c.meter_id.in_(listed))
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
    except SQLAlchemyError:
        if not inspect(store.engine).has_table("meter_health"):
            return {}  # a database without the collector's table: every meter reads as "unknown"
        with translate_errors():
            raise
    return {row["meter_id"]: _record(row) for row in rows if wanted is None or row["meter_id"] in wanted}


def save_health(store: Store, records: Sequence[HealthRecord]) -> None:
    """Insert or replace the rows of `records` in one transaction."""
    if not records:
        return
    with translate_errors(), store.engine.begin() as conn:
        upsert_health(conn, records)


def upsert_health(conn: Connection, records: Sequence[HealthRecord]) -> None:
    """Insert or replace health rows on an open connection (SQLite and PostgreSQL)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(meter_health_table)
    updates = {name: statement.excluded[name] for name in _COLUMNS if name != "meter_id"}
    statement = statement.on_conflict_do_update(index_elements=["meter_id"], set_=updates)
    conn.execute(statement, [asdict(r) for r in records])


def readings_count(store: Store, meter: Meter, start: datetime, end: datetime) -> int:
    """Distinct reading times stored for `meter` with start <= ts < end (any tariff zone)."""
    found = stored_times(store, [meter.id], start, end).get(meter.id)
    return found.received if found else 0


@dataclass(frozen=True, slots=True)
class Completeness:
    """A meter's readings in a period against the polls its schedule makes in it."""

    expected: int
    received: int
    last: datetime | None = None

    @property
    def share(self) -> float:
        """received ÷ expected, at most 1; a period without polls is complete (1.0)."""
        return 1.0 if self.expected == 0 else min(1.0, self.received / self.expected)


def stored_times(store: Store, meter_ids: Sequence[int], start: datetime, end: datetime) -> dict[int, Completeness]:
    """Per meter: distinct reading times stored with start <= ts < end and the newest (expected left 0)."""
    if not meter_ids:
        return {}
    statement = (
        select(readings_table.c.meter_id, func.count(distinct(readings_table.c.ts)), func.max(readings_table.c.ts))
        .where(readings_table.c.meter_id.in_(list(meter_ids)), readings_table.c.ts >= start, readings_table.c.ts < end)
        .group_by(readings_table.c.meter_id)
    )
    with translate_errors(), store.engine.connect() as conn:
        rows = conn.execute(statement).all()
        dialect = conn.dialect
    result = {}
    for meter_id, count, newest in rows:
        # an aggregate skips the column type: ISO text on SQLite, maybe naive
        last = UTCDateTime().process_result_value(newest, dialect) if newest is not None else None
        result[int(meter_id)] = Completeness(0, int(count), last)
    return result


def completeness_of(
    store: Store,
    meters: Sequence[Meter],
    schedules: Mapping[str, ScheduleConfig],
    start: datetime,
    end: datetime,
    tz: tzinfo,
) -> dict[int, Completeness]:
    """Per meter id: the polls its schedule (`schedules[serial]`) makes in [start, end) while the
    meter is in service, and the distinct reading times stored then. Expected polls count the
    schedule's fire times in the site's zone `tz` (offset included, jitter not); one query for all."""
    from amr.collector.schedule import expected_polls  # the scheduling rules live with the collector

    stored = stored_times(store, [m.id for m in meters], start, end)
    result = {}
    for meter in meters:
        since = max(start, meter.installed) if meter.installed else start
        until = min(end, meter.removed) if meter.removed else end
        expected = expected_polls(schedules[meter.serial], since, until, tz) if until > since else 0
        got = stored.get(meter.id)  # readings out of service are refused, so [start, end) holds only in-service ones
        result[meter.id] = Completeness(expected, got.received if got else 0, got.last if got else None)
    return result


def interval_completeness_of(
    store: Store, meters: Sequence[Meter], start: datetime, end: datetime
) -> dict[int, IntervalCompleteness]:
    """Per meter id that has interval data in [start, end): intervals expected (its profile period,
    while in service) and stored; meters without any are absent. One query for all."""
    spans = {}
    for meter in meters:
        since = max(start, meter.installed) if meter.installed else start
        until = min(end, meter.removed) if meter.removed else end
        if until > since:
            spans[meter.id] = (since, until)
    with translate_errors(), store.engine.connect() as conn:
        return interval_completeness(conn, spans)


def completeness(
    store: Store, meter: Meter, schedule: ScheduleConfig, start: datetime, end: datetime, tz: tzinfo
) -> float:
    """Share (0..1) of the polls `schedule` makes in [start, end) that left a stored reading
    (`completeness_of` for one meter)."""
    return completeness_of(store, [meter], {meter.serial: schedule}, start, end, tz)[meter.id].share


__all__ = [
    "STATUSES",
    "Completeness",
    "HealthRecord",
    "Status",
    "completeness",
    "completeness_of",
    "interval_completeness_of",
    "load_health",
    "readings_count",
    "save_health",
    "stored_times",
    "upsert_health",
]
