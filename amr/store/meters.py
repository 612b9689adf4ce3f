"""Mirroring configured meters, points and objects into the store.

The sync reads each table once, compares it with the configuration and writes only
what differs, in a few set-based statements: start-up does not grow a query per
meter. Processes starting together (two imports, API workers) may sync at the same
moment: on PostgreSQL a transaction advisory lock makes them take turns, and every
insert skips a row another process has just added.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from amr.core.meters import Meter
from amr.store.models import MeterAccountRow, MeterRatioRow, MeterRow, ObjectRow, PointRow

SYNC_LOCK = 0x616D_725F_6D65_7472  # "amr_metr": the advisory lock key of the meter sync
CHUNK = 1000
NO_OBJECT = "—"

_SIX = Decimal("0.000001")
_THREE = Decimal("0.001")


def _decimal(value: Fraction, places: Decimal) -> Decimal:
    """A fraction as the store's NUMERIC keeps it (rounded to `places`)."""
    return _quantized(value.numerator, value.denominator, places)


@functools.lru_cache(maxsize=4096)
def _quantized(numerator: int, denominator: int, places: Decimal) -> Decimal:
    return (Decimal(numerator) / denominator).quantize(places)


def _stored_decimal(value: Any, places: Decimal) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(places)


def _insert_new(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows`, skipping any whose unique key another process has just inserted."""
    maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = maker(table).on_conflict_do_nothing()
    for offset in range(0, len(rows), CHUNK):
        conn.execute(statement, rows[offset : offset + CHUNK])


def _objects(conn: Connection, meters: Sequence[Meter]) -> dict[str, int]:
    wanted = dict.fromkeys(m.object or NO_OBJECT for m in meters)
    found = {str(n): int(i) for n, i in conn.execute(select(ObjectRow.name, ObjectRow.id))}
    new = [{"name": n} for n in wanted if n not in found]
    if new:
        _insert_new(conn, ObjectRow.__table__, new)  # type: ignore[arg-type]
        found = {str(n): int(i) for n, i in conn.execute(select(ObjectRow.name, ObjectRow.id))}
    return found


def _points(conn: Connection, meters: Sequence[Meter], objects: dict[str, int]) -> dict[str, int]:
    wanted = {m.point: objects[m.object or NO_OBJECT] for m in meters}  # the last meter of a point decides
    query = select(PointRow.code, PointRow.id, PointRow.object_id)
    found = {str(c): (int(i), int(o)) for c, i, o in conn.execute(query)}
    new = [{"code": c, "object_id": o} for c, o in wanted.items() if c not in found]
    moved = [{"k_id": found[c][0], "k_object": o} for c, o in wanted.items() if c in found and found[c][1] != o]
    if moved:
        conn.execute(
            update(PointRow).where(PointRow.id == bindparam("k_id")).values(object_id=bindparam("k_object")),
            moved,
        )
    if new:
        _insert_new(conn, PointRow.__table__, new)  # type: ignore[arg-type]
        found = {str(c): (int(i), int(o)) for c, i, o in conn.execute(query)}
    return {c: i for c, (i, _) in found.items()}


_METER_FIELDS = ("point_id", "name", "model", "digits", "decimals", "tariffs", "max_power_kw", "installed", "removed")


def _meter_fields(meter: Meter, point_id: int) -> dict[str, Any]:
    return {
        "point_id": point_id,
        "name": meter.name,
        "model": meter.model,
        "digits": meter.digits,
        "decimals": meter.decimals,
        "tariffs": meter.tariffs,
        "max_power_kw": None if meter.max_power_kw is None else _decimal(meter.max_power_kw, _THREE),
        "installed": meter.installed,
        "removed": meter.removed,
    }


def _stored_meters(conn: Connection) -> dict[str, tuple[int, dict[str, Any]]]:
    columns = [getattr(MeterRow, f) for f in _METER_FIELDS]
    found = {}
    for row in conn.execute(select(MeterRow.serial, MeterRow.id, *columns)):
        fields = dict(zip(_METER_FIELDS, row[2:], strict=True))
        fields["max_power_kw"] = _stored_decimal(fields["max_power_kw"], _THREE)
        found[str(row[0])] = (int(row[1]), fields)
    return found


def _ratio_rows(meter: Meter, meter_id: int) -> list[dict[str, Any]]:
    return [
        {
            "meter_id": meter_id,
            "version": i,
            "since": v.since,
            "ct": _decimal(v.ct, _SIX),
            "vt": _decimal(v.vt, _SIX),
        }
        for i, v in enumerate(meter.ratios)
    ]


def _sync_accounts(conn: Connection, meters: Sequence[Meter], ids: dict[str, int]) -> None:
    wanted = {(ids[m.serial], a) for m in meters for a in m.accounts}
    configured = set(ids.values())
    stored = {
        (int(i), str(a))
        for i, a in conn.execute(select(MeterAccountRow.meter_id, MeterAccountRow.account))
        if int(i) in configured
    }
    gone = sorted(stored - wanted)
    for offset in range(0, len(gone), CHUNK):
        part = gone[offset : offset + CHUNK]
        conn.execute(delete(MeterAccountRow).where(tuple_(MeterAccountRow.meter_id, MeterAccountRow.account).in_(part)))
    new = [{"meter_id": i, "account": a} for i, a in sorted(wanted - stored)]
    if new:
        _insert_new(conn, MeterAccountRow.__table__, new)  # type: ignore[arg-type]


def _sync_ratios(conn: Connection, meters: Sequence[Meter], ids: dict[str, int]) -> None:
    stored: dict[int, list[tuple[int, datetime | None, Decimal | None, Decimal | None]]] = {}
    r = MeterRatioRow
    query = select(r.meter_id, r.version, r.since, r.ct, r.vt).order_by(r.meter_id, r.version)
    for meter_id, version, since, ct, vt in conn.execute(query):
        stored.setdefault(int(meter_id), []).append(
            (int(version), since, _stored_decimal(ct, _SIX), _stored_decimal(vt, _SIX))
        )
    changed: list[int] = []
    rows: list[dict[str, Any]] = []
    for meter in meters:
        meter_id = ids[meter.serial]
        wanted = _ratio_rows(meter, meter_id)
        if [(r["version"], r["since"], r["ct"], r["vt"]) for r in wanted] != stored.get(meter_id, []):
            if meter_id in stored:
                changed.append(meter_id)
            rows.extend(wanted)
    for offset in range(0, len(changed), CHUNK):
        conn.execute(delete(MeterRatioRow).where(MeterRatioRow.meter_id.in_(changed[offset : offset + CHUNK])))
    if rows:
        _insert_new(conn, MeterRatioRow.__table__, rows)  # type: ignore[arg-type]


def sync_meters(conn: Connection, meters: Sequence[Meter]) -> list[Meter]:
    """Insert or update every configured meter; return them with their store ids."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SYNC_LOCK})
    points = _points(conn, meters, _objects(conn, meters))
    stored = _stored_meters(conn)
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for meter in meters:
        fields = _meter_fields(meter, points[meter.point])
        held = stored.get(meter.serial)
        if held is None:
            new.append({"serial": meter.serial, **fields})
        elif held[1] != fields:
            changed.append({"k_id": held[0], **fields})
    if changed:
        conn.execute(
            update(MeterRow)
            .where(MeterRow.id == bindparam("k_id"))
            .values({f: bindparam(f"v_{f}") for f in _METER_FIELDS}),
            [{"k_id": c.pop("k_id"), **{f"v_{f}": v for f, v in c.items()}} for c in changed],
        )
    if new:
        _insert_new(conn, MeterRow.__table__, new)  # type: ignore[arg-type]
        stored = _stored_meters(conn)
    ids = {serial: held[0] for serial, held in stored.items()}
    _sync_accounts(conn, meters, ids)
    _sync_ratios(conn, meters, ids)
    return [meter.with_id(ids[meter.serial]) for meter in meters]
