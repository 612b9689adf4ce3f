"""Meter events (table ``meter_events``) and clock checks (table ``meter_clock``).

An event is stored once however often its journal is read: the key is (meter, time, code, detail);
a second insert of the same key does nothing (``ON CONFLICT DO NOTHING`` on both backends), so
two collectors reading the same journal at once store it once. An alarming event (tampering,
power loss: `MeterEvent.alarming`) is stored with ``alarm = 'pending'`` in the same statement
when alarms are configured: the alarm sender (`amr.operations.alarms`) finds it there after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from amr.core.events import MeterEvent
from amr.store.models import clock_requests_table, meter_clock_table, meter_events_table
from amr.store.rows import listed_ids
from amr.store.store import Store, translate_errors


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as kept in the store."""

    id: int
    serial: str
    event: MeterEvent
    recorded_at: datetime
    alarm: str | None

    def as_dict(self, language: str = "ru") -> dict[str, Any]:
        """Plain JSON values (times ISO 8601 UTC)."""
        e = self.event
        return {
            "id": self.id,
            "meter": self.serial,
            "timestamp": e.utc().isoformat(),
            "code": e.code,
            "category": e.kind.category,
            "severity": e.severity.value,
            "text": e.text(language),
            "text_ru": e.text("ru"),
            "text_en": e.text("en"),
            "detail": e.detail,
            "source": e.source,
            "raw": e.raw,
            "recorded_at": self.recorded_at.isoformat(),
            "alarm": self.alarm,
        }


def _insert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(meter_events_table)


def save_events(
    store: Store, meter_ids: Mapping[str, int], events: Iterable[MeterEvent], now: datetime, *, alarms: bool = False
) -> list[MeterEvent]:
    """Store the events not stored yet; the ones that were new. Events of unknown meters are skipped."""
    new: list[MeterEvent] = []
    with translate_errors(), store.engine.begin() as conn:
        for event in events:
            meter_id = meter_ids.get(event.serial)
            if meter_id is None:
                continue
            statement = (
                _insert(conn)
                .values(
                    meter_id=meter_id, ts=event.utc(), code=event.code, severity=event.severity.value,
                    source=event.source, detail=event.detail[:200],
                    raw=json.dumps(event.raw, ensure_ascii=False, sort_keys=True, default=str),
                    recorded_at=now, alarm="pending" if alarms and event.alarming else None, alarm_attempts=0,
                )
                .on_conflict_do_nothing(index_elements=["meter_id", "ts", "code", "detail"])
                .returning(meter_events_table.c.id)
            )
            if conn.execute(statement).first() is not None:
                new.append(event)
    return new


def _stored(row: Any, serials: Mapping[int, str]) -> StoredEvent:
    serial = serials.get(row.meter_id, str(row.meter_id))
    event = MeterEvent(serial, row.ts, row.code, json.loads(row.raw or "{}"), row.source, row.detail)
    return StoredEvent(row.id, serial, event, row.recorded_at, row.alarm)


def events_of(
    store: Store,
    serials: Mapping[int, str],
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    codes: Sequence[str] | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[StoredEvent]:
    """Events of the meters `serials` (meter id → serial), newest first, in [start, end)."""
    statement = select(meter_events_table).where(meter_events_table.c.meter_id.in_(list(serials)))
    if start is not None:
        statement = statement.where(meter_events_table.c.ts >= start)
    if end is not None:
        statement = statement.where(meter_events_table.c.ts < end)
    if codes:
        statement = statement.where(meter_events_table.c.code.in_(list(codes)))
    statement = (
        statement.order_by(meter_events_table.c.ts.desc(), meter_events_table.c.id.desc()).limit(limit).offset(offset)
    )
    with translate_errors(), store.engine.connect() as conn:
        return [_stored(row, serials) for row in conn.execute(statement)]


def event_counts(store: Store) -> dict[tuple[str, str], int]:
    """Stored events by (code, severity), for ``/metrics``."""
    statement = select(meter_events_table.c.code, meter_events_table.c.severity, func.count()).group_by(
        meter_events_table.c.code, meter_events_table.c.severity
    )
    with translate_errors(), store.engine.connect() as conn:
        return {(code, severity): int(n) for code, severity, n in conn.execute(statement)}


def pending_alarms(store: Store, serials: Mapping[int, str], limit: int = 100) -> list[StoredEvent]:
    """Events whose alarm is still to be sent, oldest first."""
    statement = (
        select(meter_events_table)
        .where(meter_events_table.c.alarm == "pending")
        .order_by(meter_events_table.c.id)
        .limit(limit)
    )
    with translate_errors(), store.engine.connect() as conn:
        return [_stored(row, serials) for row in conn.execute(statement)]


def mark_alarm(store: Store, event_id: int, *, sent: bool) -> None:
    """Record a delivery attempt: ``sent``, or one more failed attempt (the alarm stays pending)."""
    values: dict[str, Any] = {"alarm_attempts": meter_events_table.c.alarm_attempts + 1}
    if sent:
        values["alarm"] = "sent"
    with translate_errors(), store.engine.begin() as conn:
        conn.execute(update(meter_events_table).where(meter_events_table.c.id == event_id).values(**values))


# --- clock checks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockCheck:
    """The last clock check of one meter (`drift_ms`: the meter's clock minus the head-end's)."""

    meter_id: int
    checked_at: datetime
    state: str  # ok | drifting | corrected | refused | uncorrectable | unread
    meter_time: datetime | None = None
    drift_ms: int | None = None
    message: str = ""
    corrected_at: datetime | None = None
    correction_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON (times ISO 8601)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def save_clock(store: Store, check: ClockCheck) -> None:
    """Insert or replace a meter's clock check; a check without a correction keeps the last one."""
    values = asdict(check)
    keep = check.corrected_at is None
    with translate_errors(), store.engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(meter_clock_table).values(**values)
        changed = {k: v for k, v in values.items() if k != "meter_id" and not (keep and k.startswith("correct"))}
        conn.execute(statement.on_conflict_do_update(index_elements=["meter_id"], set_=changed))


def request_clock(store: Store, meter_id: int, actor: str, reason: str, now: datetime) -> None:
    """Ask the collector polling the meter to check and correct its clock (a newer request replaces one)."""
    values = {"meter_id": meter_id, "requested_at": now, "actor": actor[:100], "reason": reason}
    with translate_errors(), store.engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(clock_requests_table).values(**values)
        conn.execute(statement.on_conflict_do_update(index_elements=["meter_id"], set_=values))


@dataclass(frozen=True, slots=True)
class ClockRequest:
    """A dispatcher's pending request."""

    meter_id: int
    requested_at: datetime
    actor: str
    reason: str


def clock_requests(store: Store) -> list[ClockRequest]:
    """The pending requests, oldest first."""
    with translate_errors(), store.engine.connect() as conn:
        rows = conn.execute(select(clock_requests_table).order_by(clock_requests_table.c.requested_at)).mappings().all()
    return [ClockRequest(**dict(row)) for row in rows]


def drop_clock_request(store: Store, request: ClockRequest) -> None:
    """Remove a request once done (not a newer one made meanwhile)."""
    with translate_errors(), store.engine.begin() as conn:
        conn.execute(
            delete(clock_requests_table).where(
                clock_requests_table.c.meter_id == request.meter_id,
                clock_requests_table.c.requested_at == request.requested_at,
            )
        )


def claim_correction(store: Store, meter_id: int, now: datetime, not_since: datetime) -> tuple[bool, datetime | None]:
    """Mark a correction of the meter as begun at `now`, unless one began at or after `not_since`.

    One conditional UPDATE decides, so of two processes correcting one meter at once only one
    goes on (PostgreSQL re-checks the condition after the other's commit; SQLite writes one at a
    time). Returns whether this one may correct, and the previous ``corrected_at`` to put back
    (`release_correction`) when the correction is not made after all.
    """
    with translate_errors(), store.engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(meter_clock_table)
            .values(meter_id=meter_id, checked_at=now, state="unread", message="")
            .on_conflict_do_nothing(index_elements=["meter_id"])
        )
        previous = conn.execute(
            select(meter_clock_table.c.corrected_at).where(meter_clock_table.c.meter_id == meter_id)
        ).scalar_one_or_none()
        claimed = conn.execute(
            update(meter_clock_table)
            .where(
                meter_clock_table.c.meter_id == meter_id,
                or_(meter_clock_table.c.corrected_at.is_(None), meter_clock_table.c.corrected_at < not_since),
            )
            .values(corrected_at=now)
        ).rowcount
    return claimed == 1, previous


def release_correction(store: Store, meter_id: int, claimed_at: datetime, previous: datetime | None) -> None:
    """Undo `claim_correction` (the correction was not made): the previous time comes back."""
    with translate_errors(), store.engine.begin() as conn:
        conn.execute(
            update(meter_clock_table)
            .where(meter_clock_table.c.meter_id == meter_id, meter_clock_table.c.corrected_at == claimed_at)
            .values(corrected_at=previous)
        )


def load_clock(store: Store, meter_ids: Iterable[int] | None = None) -> dict[int, ClockCheck]:
    """The last clock check per meter id (of `meter_ids`, any number of them; all when None)."""
    listed, wanted = listed_ids(meter_ids)
    statement = select(meter_clock_table)
    if listed is not None:
        statement = statement.where(meter_clock_table.c.meter_id.in_(listed))
    with translate_errors(), store.engine.connect() as conn:
        rows = conn.execute(statement).mappings().all()
    return {row["meter_id"]: ClockCheck(**dict(row)) for row in rows if wanted is None or row["meter_id"] in wanted}


__all__ = [
    "ClockCheck",
    "ClockRequest",
    "StoredEvent",
    "claim_correction",
    "clock_requests",
    "drop_clock_request",
    "event_counts",
    "events_of",
    "load_clock",
    "mark_alarm",
    "pending_alarms",
    "release_correction",
    "request_clock",
    "save_clock",
    "save_events",
]
