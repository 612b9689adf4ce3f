"""Writing a validated batch: accepted readings in bulk, refused ones with their reasons."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from amr.core.domain import CHANNELS, StoredReading
from amr.store.models import readings_table, rejected_readings_table
from amr.store.rows import READING_COLUMNS, reading_to_row
from amr.validation.pipeline import BatchResult, Rejection

INSERT_CHUNK = 1000
READINGS_COPY = f"COPY readings ({', '.join(READING_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
READINGS_COPY_TYPES = ("int4", "int2", "timestamptz", "int8", "int8", "int8", "int8", "text", "int2", "timestamptz")
"""The PostgreSQL types of `READING_COLUMNS`, in order, for binary COPY."""


def write_accepted(conn: Connection, readings: Sequence[StoredReading], use_copy: bool) -> None:
    """Insert accepted readings: binary COPY on PostgreSQL, batched INSERT elsewhere."""
    if not readings:
        return
    if use_copy:
        _copy(conn, readings)
        return
    rows = [reading_to_row(r) for r in readings]
    for offset in range(0, len(rows), INSERT_CHUNK):
        conn.execute(insert(readings_table), rows[offset : offset + INSERT_CHUNK])


def _copy(conn: Connection, readings: Sequence[StoredReading]) -> None:
    raw = conn.connection.driver_connection
    a_plus, a_minus, r_plus, r_minus = CHANNELS
    with raw.cursor() as cursor, cursor.copy(READINGS_COPY) as copy:  # type: ignore[union-attr]
        copy.set_types(list(READINGS_COPY_TYPES))
        write = copy.write_row
        for r in readings:
            v = r.values
            write(
                (
                    r.meter_id,
                    r.tariff,
                    r.ts,
                    v.get(a_plus),
                    v.get(a_minus),
                    v.get(r_plus),
                    v.get(r_minus),
                    r.source,
                    r.flags,
                    r.received_at,
                )
            )


def update_flags(conn: Connection, readings: Sequence[StoredReading]) -> None:
    """Store new flags of readings whose rollover status changed."""
    if not readings:
        return
    statement = (
        update(readings_table)
        .where(
            readings_table.c.meter_id == bindparam("k_meter"),
            readings_table.c.tariff == bindparam("k_tariff"),
            readings_table.c.ts == bindparam("k_ts"),
        )
        .values(flags=bindparam("k_flags"))
    )
    conn.execute(
        statement,
        [{"k_meter": r.meter_id, "k_tariff": r.tariff, "k_ts": r.ts, "k_flags": r.flags} for r in readings],
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def rejection_row(rejection: Rejection) -> dict[str, Any]:
    """The columns of a refused reading; the fingerprint (the input, not the verdict) keeps it once."""
    incoming = rejection.incoming
    values = {c.value: incoming.values.get(c) for c in CHANNELS}
    payload = json.dumps(incoming.payload or {}, ensure_ascii=False, default=_jsonable, sort_keys=True)
    reasons = ",".join(r.value for r in rejection.reasons)
    key = "|".join(
        [
            incoming.meter,
            incoming.ts.isoformat() if incoming.ts else "",
            str(incoming.tariff),
            json.dumps(values, sort_keys=True),
            incoming.source.value,
            payload,
        ]
    )
    return {
        "meter_serial": incoming.meter[:200],
        "meter_id": rejection.meter_id,
        "ts": incoming.ts,
        "tariff": incoming.tariff,
        **values,
        "source": incoming.source.value,
        "reasons": reasons,
        "message": rejection.message,
        "payload": payload,
        "received_at": incoming.received_at or datetime.now(UTC),
        "fingerprint": hashlib.sha256(key.encode("utf-8")).hexdigest(),
        "status": "open",
    }


def write_rejected(conn: Connection, rejected: Sequence[Rejection]) -> None:
    """Keep refused readings; one already kept (same fingerprint) is not kept twice."""
    if not rejected:
        return
    # in fingerprint order: two writers keeping the same refusals take their keys in one order (no deadlock)
    rows = sorted({row["fingerprint"]: row for row in map(rejection_row, rejected)}.values(),
                  key=lambda row: str(row["fingerprint"]))
    maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = maker(rejected_readings_table).on_conflict_do_nothing(index_elements=["fingerprint"])
    for offset in range(0, len(rows), INSERT_CHUNK):
        conn.execute(statement, rows[offset : offset + INSERT_CHUNK])


def write_batch(conn: Connection, result: BatchResult, use_copy: bool) -> None:
    """Write everything the pipeline decided for one batch, in the caller's transaction."""
    write_accepted(conn, result.accepted, use_copy)
    update_flags(conn, list(result.flag_updates.values()))
    write_rejected(conn, result.rejected)
