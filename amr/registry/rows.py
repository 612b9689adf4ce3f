"""Writing the rows of some meters: their objects, points, meter rows, accounts and ratio versions.

Each step reads only the rows of the meters it writes (by key, in chunks), so an edit of one
meter in a registry of 100,000 touches a few rows, and applying 100,000 reads each table once
in chunks. Runs inside the registry's transaction (`amr.registry.stored.transaction`); inserts
skip a key another writer (a process syncing a TOML) has just added.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, tuple_, update

from amr.core.meters import Meter
from amr.store.meters import NO_OBJECT
from amr.store.meters import _insert_new as insert_new  # rows another writer has just added are skipped
from amr.store.meters import _meter_fields as meter_fields  # the identity columns, as the TOML sync writes them
from amr.store.models import (
    meter_accounts_table,
    meter_ratios_table,
    metering_points_table,
    meters_table,
    objects_table,
)

CHUNK = 1000
ANALYZE_AFTER = 1000
"""Rows written in one go after which PostgreSQL's statistics of their table are renewed at once."""
_SIX = Decimal("0.000001")

__all__ = ["ANALYZE_AFTER", "NO_OBJECT", "analyze_after_many", "insert_new", "meter_fields", "meter_ids", "object_ids",
           "point_ids", "sync_accounts",
           "sync_ratios"]


def chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    """`values` in lists of at most `CHUNK`."""
    for offset in range(0, len(values), CHUNK):
        yield list(values[offset : offset + CHUNK])


def analyze_after_many(conn: Connection, table: str, written: int) -> None:
    """Renew PostgreSQL's statistics of `table` after `written` new rows, when they are many. A table
    filled in this transaction is otherwise planned as the empty table it was: each later statement
    of the transaction that PostgreSQL prepared while it was empty (psycopg prepares a statement run
    five times) scans every row, and reading back the ids of 100,000 new meters takes minutes."""
    if written >= ANALYZE_AFTER and conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {table}")


def exact(value: Fraction | Decimal | float | None, places: Decimal) -> Decimal | None:
    """A number as the store's NUMERIC keeps it (rounded to `places`)."""
    if value is None:
        return None
    if isinstance(value, Fraction):
        return (Decimal(value.numerator) / value.denominator).quantize(places)
    return Decimal(str(value)).quantize(places)


def _by_key(conn: Connection, key: Any, value: Any, wanted: Iterable[Any]) -> dict[Any, Any]:
    found: dict[Any, Any] = {}
    for part in chunks(sorted(set(wanted))):
        found.update(conn.execute(select(key, value).where(key.in_(part))).all())
    return found


def object_ids(conn: Connection, meters: Sequence[Meter]) -> dict[str, int]:
    """The ids of the meters' objects, made where missing."""
    names = {m.object or NO_OBJECT for m in meters}
    found = _by_key(conn, objects_table.c.name, objects_table.c.id, names)
    missing = [{"name": n} for n in sorted(names - found.keys())]
    if missing:
        insert_new(conn, objects_table, missing)
        analyze_after_many(conn, "objects", len(missing))
        found = _by_key(conn, objects_table.c.name, objects_table.c.id, names)
    return {str(k): int(v) for k, v in found.items()}


def point_ids(conn: Connection, meters: Sequence[Meter], objects: dict[str, int]) -> dict[str, int]:
    """The ids of the meters' metering points, made where missing and moved to the object their last
    meter names."""
    wanted = {m.point: objects[m.object or NO_OBJECT] for m in meters}
    found: dict[str, tuple[int, int]] = {}
    for part in chunks(sorted(wanted)):
        rows = conn.execute(
            select(metering_points_table.c.code, metering_points_table.c.id, metering_points_table.c.object_id).where(
                metering_points_table.c.code.in_(part)
            )
        )
        found.update((str(c), (int(i), int(o))) for c, i, o in rows)
    moved = [{"k_id": found[c][0], "k_object": o} for c, o in wanted.items() if c in found and found[c][1] != o]
    if moved:
        statement = (
            update(metering_points_table)
            .where(metering_points_table.c.id == bindparam("k_id"))
            .values(object_id=bindparam("k_object"))
        )
        for part in chunks(moved):
            conn.execute(statement, part)
    new = [{"code": c, "object_id": o} for c, o in wanted.items() if c not in found]
    if new:
        insert_new(conn, metering_points_table, new)
        analyze_after_many(conn, "metering_points", len(new))
    return {
        str(k): int(v)
        for k, v in _by_key(conn, metering_points_table.c.code, metering_points_table.c.id, wanted).items()
    }


def meter_ids(conn: Connection, serials: Iterable[str]) -> dict[str, int]:
    """The store ids of these serials (those it has)."""
    return {str(k): int(v) for k, v in _by_key(conn, meters_table.c.serial, meters_table.c.id, serials).items()}


def sync_accounts(conn: Connection, meters: Sequence[Meter], ids: dict[str, int]) -> None:
    """The accounts of these meters as they say (other meters' stay)."""
    wanted = {(ids[m.serial], a) for m in meters for a in m.accounts}
    stored: set[tuple[int, str]] = set()
    a = meter_accounts_table
    for part in chunks(sorted(ids[m.serial] for m in meters)):
        query = select(a.c.meter_id, a.c.account).where(a.c.meter_id.in_(part))
        stored.update((int(i), str(x)) for i, x in conn.execute(query))
    for part in chunks(sorted(stored - wanted)):
        conn.execute(delete(a).where(tuple_(a.c.meter_id, a.c.account).in_(part)))
    new = [{"meter_id": i, "account": x} for i, x in sorted(wanted - stored)]
    if new:
        insert_new(conn, a, new)


Version = tuple[int, datetime | None, Decimal | None, Decimal | None]


def sync_ratios(conn: Connection, meters: Sequence[Meter], ids: dict[str, int]) -> None:
    """The ratio versions of these meters as they say: a meter whose versions differ has them rewritten."""
    r = meter_ratios_table
    stored: dict[int, list[Version]] = {}
    for part in chunks(sorted(ids[m.serial] for m in meters)):
        query = select(r.c.meter_id, r.c.version, r.c.since, r.c.ct, r.c.vt).where(r.c.meter_id.in_(part)).order_by(
            r.c.meter_id, r.c.version)
        for meter_id, version, since, ct, vt in conn.execute(query):
            stored.setdefault(int(meter_id), []).append((int(version), since, exact(ct, _SIX), exact(vt, _SIX)))
    changed: list[int] = []
    rows: list[dict[str, Any]] = []
    for meter in meters:
        meter_id = ids[meter.serial]
        wanted: list[Version] = [
            (i, v.since, exact(v.ct, _SIX), exact(v.vt, _SIX)) for i, v in enumerate(meter.ratios)
        ]
        if wanted != stored.get(meter_id, []):
            if meter_id in stored:
                changed.append(meter_id)
            rows += [{"meter_id": meter_id, "version": i, "since": s, "ct": c, "vt": v} for i, s, c, v in wanted]
    for part in chunks(changed):
        conn.execute(delete(r).where(r.c.meter_id.in_(part)))
    if rows:
        insert_new(conn, r, rows)
