"""Queries the HTTP API needs beyond `Store`: the latest reading per series, a page of a
meter's history, deleting the latest manual reading, streaming for export, and refused readings
of a set of meters.

The latest reading per (meter, tariff) is one index probe per series: on PostgreSQL a
LATERAL subquery over the primary key (meter_id, tariff, ts) read backwards; on SQLite a
correlated ``max(ts)``, which SQLite answers from the same index. Neither reads a series'
history, so the cost grows with the number of meters, not of readings.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, text

from amr.core.domain import CHANNELS, Channel, StoredReading
from amr.errors import NotFound, StoreError
from amr.store.audit_trail import audit
from amr.store.models import readings_table, rejected_readings_table
from amr.store.rows import READING_COLUMNS, reading_from_row
from amr.store.store import RejectedRecord, Session, Store, rejected_from_row, translate_errors

CHUNK = 200
_COLUMNS = ", ".join(f"r.{c}" for c in READING_COLUMNS)


class NotLatest(StoreError):
    """Only the latest reading of a series may be deleted; `later` is the time of a later one (UTC)."""

    def __init__(self, later: datetime) -> None:
        super().__init__(later.isoformat())
        self.later = later


class NotManual(StoreError):
    """Only readings typed in by a person (web, mobile, operator) may be deleted."""


def _latest_sql(count: int, dialect: str) -> Any:
    if dialect == "postgresql":
        return text(
            "SELECT r.* FROM unnest(CAST(:m AS integer[]), CAST(:t AS integer[])) AS k(m, t) "
            f"CROSS JOIN LATERAL (SELECT {_COLUMNS} FROM readings r WHERE r.meter_id = k.m AND r.tariff = k.t "
            "ORDER BY r.ts DESC LIMIT 1) r"
        )
    rows = ", ".join(f"(:m{i}, :t{i})" for i in range(count))
    return text(
        f"WITH k(m, t) AS (VALUES {rows}) SELECT {_COLUMNS} FROM k JOIN readings r "
        "ON r.meter_id = k.m AND r.tariff = k.t "
        "AND r.ts = (SELECT max(x.ts) FROM readings x WHERE x.meter_id = k.m AND x.tariff = k.t)"
    )


def latest_readings(
    store: Store, meter_ids: Sequence[int], tariffs: Sequence[int] = (0,)
) -> dict[tuple[int, int], StoredReading]:
    """The latest accepted reading of each (meter, tariff), keyed so; series without readings are absent."""
    keys = [(m, t) for m in dict.fromkeys(meter_ids) for t in tariffs]
    found: dict[tuple[int, int], StoredReading] = {}
    with translate_errors(), store.engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            rows = conn.execute(
                _latest_sql(len(keys), dialect), {"m": [k[0] for k in keys], "t": [k[1] for k in keys]}
            ).mappings()
            for row in rows:
                reading = reading_from_row(row)
                found[(reading.meter_id, reading.tariff)] = reading
            return found
        for offset in range(0, len(keys), CHUNK):
            chunk = keys[offset : offset + CHUNK]
            params: dict[str, int] = {}
            for i, (m, t) in enumerate(chunk):
                params[f"m{i}"] = m
                params[f"t{i}"] = t
            for row in conn.execute(_latest_sql(len(chunk), dialect), params).mappings():
                reading = reading_from_row(row)
                found[(reading.meter_id, reading.tariff)] = reading
    return found


def history(
    store: Store,
    meter_id: int,
    start: datetime | None,
    end: datetime | None,
    sources: Collection[str] | None,
    after: tuple[datetime, int] | None,
    limit: int,
    tariff: int | None = None,
) -> list[StoredReading]:
    """A page of a meter's accepted readings, newest first (then by tariff); `after` is the
    (ts, tariff) of the last reading of the previous page."""
    statement = select(readings_table).where(readings_table.c.meter_id == meter_id)
    if start is not None:
        statement = statement.where(readings_table.c.ts >= start)
    if end is not None:
        statement = statement.where(readings_table.c.ts < end)
    if sources is not None:
        statement = statement.where(readings_table.c.source.in_(list(sources)))
    if tariff is not None:
        statement = statement.where(readings_table.c.tariff == tariff)
    if after is not None:
        ts, last_tariff = after
        statement = statement.where(
            or_(readings_table.c.ts < ts, and_(readings_table.c.ts == ts, readings_table.c.tariff > last_tariff))
        )
    statement = statement.order_by(readings_table.c.ts.desc(), readings_table.c.tariff).limit(limit)
    with translate_errors(), store.engine.connect() as conn:
        return [reading_from_row(row) for row in conn.execute(statement).mappings()]


def previous_reading(store: Store, meter_id: int, tariff: int, ts: datetime, channel: Channel) -> StoredReading | None:
    """The last accepted reading of a series before `ts` that has `channel`."""
    column = readings_table.c[channel.value]
    statement = (
        select(readings_table)
        .where(
            readings_table.c.meter_id == meter_id,
            readings_table.c.tariff == tariff,
            readings_table.c.ts < ts,
            column.is_not(None),
        )
        .order_by(readings_table.c.ts.desc())
        .limit(1)
    )
    with translate_errors(), store.engine.connect() as conn:
        row = conn.execute(statement).mappings().first()
    return None if row is None else reading_from_row(row)


def get_reading(store: Store, meter_id: int, tariff: int, ts: datetime) -> StoredReading:
    """One accepted reading by its key; `NotFound` otherwise."""
    statement = select(readings_table).where(
        readings_table.c.meter_id == meter_id, readings_table.c.tariff == tariff, readings_table.c.ts == ts
    )
    with translate_errors(), store.engine.connect() as conn:
        row = conn.execute(statement).mappings().first()
    if row is None:
        raise NotFound("no such reading")
    return reading_from_row(row)


def delete_latest(
    store: Store,
    meter_id: int,
    tariff: int,
    ts: datetime,
    sources: Collection[str],
    actor: str,
    reason: str,
    now: datetime,
    subject: str,
) -> StoredReading:
    """Delete a reading if it is the latest of its series and from one of `sources`; audited.

    Raises `NotFound`, `NotManual` or `NotLatest`.
    """
    key = (readings_table.c.meter_id == meter_id, readings_table.c.tariff == tariff)

    def work(session: Session) -> StoredReading:
        session.lock([(meter_id, tariff)])  # no reading of the series is judged or written meanwhile
        conn = session.conn
        row = conn.execute(select(readings_table).where(*key, readings_table.c.ts == ts)).mappings().first()
        if row is None:
            raise NotFound("no such reading")
        reading = reading_from_row(row)
        if reading.source not in sources:
            raise NotManual(reading.source)
        later = conn.execute(select(readings_table.c.ts).where(*key, readings_table.c.ts > ts).limit(1)).first()
        if later is not None:
            raise NotLatest(later[0])
        conn.execute(delete(readings_table).where(*key, readings_table.c.ts == ts))
        audit(
            conn,
            now,
            actor,
            "delete_reading",
            subject,
            reason,
            {
                "meter_id": meter_id,
                "tariff": tariff,
                "ts": ts.isoformat(),
                "source": reading.source,
                "values": {c.value: reading.values.get(c) for c in CHANNELS},
            },
        )
        return reading

    return store.write(work)


def stream_readings(
    store: Store, meter_ids: Sequence[int], start: datetime, end: datetime, batch: int = 5000
) -> Iterator[StoredReading]:
    """Accepted readings of the meters with start <= ts < end, by meter, time and tariff, read in batches."""
    for meter_id in meter_ids:
        after: tuple[datetime, int] | None = None
        while True:
            statement = select(readings_table).where(
                readings_table.c.meter_id == meter_id, readings_table.c.ts >= start, readings_table.c.ts < end
            )
            if after is not None:
                statement = statement.where(
                    or_(
                        readings_table.c.ts > after[0],
                        and_(readings_table.c.ts == after[0], readings_table.c.tariff > after[1]),
                    )
                )
            statement = statement.order_by(readings_table.c.ts, readings_table.c.tariff).limit(batch)
            with translate_errors(), store.engine.connect() as conn:
                rows = [reading_from_row(row) for row in conn.execute(statement).mappings()]
            yield from rows
            if len(rows) < batch:
                break
            after = (rows[-1].ts, rows[-1].tariff)


def rejected_of(
    store: Store, status: str | None, serials: Collection[str] | None, limit: int, offset: int
) -> list[RejectedRecord]:
    """Refused readings, newest first; `serials` limits the meters (None: every one, unknown serials too)."""
    statement = select(rejected_readings_table)
    if status is not None:
        statement = statement.where(rejected_readings_table.c.status == status)
    if serials is not None:
        statement = statement.where(rejected_readings_table.c.meter_serial.in_(list(serials)))
    statement = statement.order_by(rejected_readings_table.c.id.desc()).limit(limit).offset(offset)
    with translate_errors(), store.engine.connect() as conn:
        return [rejected_from_row(row) for row in conn.execute(statement).mappings()]


__all__ = [
    "NotLatest",
    "NotManual",
    "delete_latest",
    "get_reading",
    "history",
    "latest_readings",
    "previous_reading",
    "rejected_of",
    "stream_readings",
]
