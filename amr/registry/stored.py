"""The registry as the store keeps it: reading it back as entries, writing entries, its version.

Meters keep their rows in `meters` (with `metering_points`, `objects`, `meter_accounts`,
`meter_ratios`), their field side in the columns 0011 added, and buses in `buses`; protocol
settings and schedules are JSON. A meter taken out of the registry is retired (`retired_at`):
its rows, ids and readings stay. Every write bumps `registry_state.version` in its own
transaction and, on PostgreSQL, sends ``NOTIFY amr_registry`` (delivered at commit), so readers
learn of it at once (`amr.registry.watch`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, insert, select, text, update

from amr.config import Config
from amr.core.durations import parse_duration
from amr.core.meters import Meter
from amr.registry.entries import Entry, decimal
from amr.registry.rows import (
    NO_OBJECT,
    analyze_after_many,
    insert_new,
    meter_fields,
    meter_ids,
    object_ids,
    point_ids,
    sync_accounts,
    sync_ratios,
)
from amr.store import Store
from amr.store.meters import REGISTRY_LOCK
from amr.store.models import (
    buses_table,
    meter_accounts_table,
    meter_ratios_table,
    metering_points_table,
    meters_table,
    objects_table,
    registry_state_table,
)
from amr.store.store import translate_errors

CHANNEL = "amr_registry"  # the PostgreSQL NOTIFY channel of registry changes
CHUNK = 1000
_BUS_COMMON = ("name", "kind", "url", "timeout", "retries", "retry_backoff", "schedule")
_METER_COMMON = (
    "serial", "name", "object", "point", "model", "accounts", "digits", "decimals", "tariffs", "ct_ratio",
    "vt_ratio", "max_power_kw", "installed", "removed", "bus", "address", "timeout", "retries", "schedule",
)


@contextmanager
def transaction(store: Store) -> Iterator[Connection]:
    """A write transaction holding the registry's lock (PostgreSQL: an advisory lock; SQLite: the
    database's write lock, taken at BEGIN), so two writers take turns and neither half-applies."""
    with translate_errors(), store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REGISTRY_LOCK})
        yield conn


def version(conn: Connection) -> int:
    """The registry's change counter."""
    held = conn.execute(
        select(registry_state_table.c.version).where(registry_state_table.c.id == 1)
    ).scalar_one_or_none()
    return 0 if held is None else int(held)


def bump(conn: Connection) -> int:
    """Count a change (in the caller's transaction) and tell PostgreSQL listeners at commit."""
    counted = conn.execute(
        update(registry_state_table)
        .where(registry_state_table.c.id == 1)
        .values(version=registry_state_table.c.version + 1)
    )
    if counted.rowcount == 0:  # its row emptied by hand (or a test): counting starts again above 0
        conn.execute(insert(registry_state_table).values(id=1, version=1))
    new = version(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(new)})
    return new


def _ms(value: Any) -> int | None:
    return None if value is None else round(parse_duration(value).total_seconds() * 1000)


def _duration(ms: int | None) -> timedelta | None:
    return None if ms is None else timedelta(milliseconds=ms)


@functools.lru_cache(maxsize=4096)
def parsed_json(text: str) -> Any:
    """JSON text as data, parsed once per distinct text (thousands of meters share a few settings);
    callers copy what they keep (`dict.update`) and never change it."""
    return json.loads(text)


@functools.lru_cache(maxsize=4096)
def _decimal(value: Any) -> Decimal:
    """A stored NUMERIC as the plain decimal an entry holds (``40``, not ``40.000000``; once per value:
    thousands of meters share a few ratios)."""
    return decimal(value if isinstance(value, Decimal) else Decimal(str(value)))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not kept in the registry")


# --- reading ----------------------------------------------------------------------------


def read_buses(conn: Connection, names: list[str] | None = None) -> list[Entry]:
    """Every bus of the registry (those of `names` if given) as a (not yet validated) entry, by name."""
    entries = []
    query = select(buses_table).order_by(buses_table.c.name)
    if names is not None:
        query = query.where(buses_table.c.name.in_(names))
    for row in conn.execute(query).mappings():
        entry: Entry = {"name": row["name"], "kind": row["kind"], "url": row["url"]}
        if row["timeout_ms"] is not None:
            entry["timeout"] = _duration(row["timeout_ms"])
        if row["retries"] is not None:
            entry["retries"] = row["retries"]
        if row["retry_backoff_ms"] is not None:
            entry["retry_backoff"] = _duration(row["retry_backoff_ms"])
        if row["schedule"] is not None:
            entry["schedule"] = json.loads(row["schedule"])
        entry.update(json.loads(row["settings"] or "{}"))
        entries.append(entry)
    return entries


def meters_query(*conditions: Any, limit: int | None = None) -> Select[Any]:
    """The rows of the meters in the registry (not retired; those meeting `conditions` on the meter, its
    point or its bus, the first `limit`), by serial, with the columns `meter_row_entry` reads."""
    m, p, o, b = meters_table, metering_points_table, objects_table, buses_table
    return (
        select(
            m.c.id, m.c.serial, m.c.name, o.c.name, p.c.code, m.c.model, m.c.digits, m.c.decimals, m.c.tariffs,
            m.c.max_power_kw, m.c.installed, m.c.removed, b.c.name, m.c.address, m.c.timeout_ms, m.c.retries,
            m.c.schedule, m.c.settings,
        )
        .join(p, p.c.id == m.c.point_id)
        .join(o, o.c.id == p.c.object_id)
        .outerjoin(b, b.c.id == m.c.bus_id)
        .where(m.c.retired_at.is_(None), *[c for c in conditions if c is not None])
        .order_by(m.c.serial)
        .limit(limit)
    )


ACCOUNTS_QUERY = select(meter_accounts_table.c.meter_id, meter_accounts_table.c.account)
"""Meter id and account of every meter's accounts."""
RATIOS_QUERY = select(
    meter_ratios_table.c.meter_id, meter_ratios_table.c.since, meter_ratios_table.c.ct, meter_ratios_table.c.vt
).order_by(meter_ratios_table.c.meter_id, meter_ratios_table.c.version)
"""Meter id, since, CT and VT of every meter's ratio versions, in order."""


def read_meters(conn: Connection, *conditions: Any, limit: int | None = None) -> tuple[list[Entry], dict[str, int]]:
    """Every meter in the registry (not retired; those meeting `conditions` on the meter, its point or
    its bus, the first `limit`) as a (not yet validated) entry, by serial; and the store ids by serial."""
    query = meters_query(*conditions, limit=limit)
    rows = conn.execute(query).all()
    some = [int(row[0]) for row in rows] if conditions or limit is not None else None
    accounts: dict[int, list[str]] = {}
    ratios: dict[int, list[tuple[datetime | None, Any, Any]]] = {}
    for part in [None] if some is None else [some[i : i + CHUNK] for i in range(0, len(some), CHUNK)]:
        query_accounts, query_ratios = ACCOUNTS_QUERY, RATIOS_QUERY
        if part is not None:
            query_accounts = query_accounts.where(meter_accounts_table.c.meter_id.in_(part))
            query_ratios = query_ratios.where(meter_ratios_table.c.meter_id.in_(part))
        for meter_id, account in conn.execute(query_accounts).all():
            accounts.setdefault(int(meter_id), []).append(str(account))
        for meter_id, since, ct, vt in conn.execute(query_ratios).all():
            ratios.setdefault(int(meter_id), []).append((since, ct, vt))
    entries: list[Entry] = []
    ids: dict[str, int] = {}
    for row in rows:
        ids[row[1]] = row[0]
        entries.append(meter_row_entry(row, accounts.get(row[0], []), ratios.get(row[0], [])))
    return entries, ids


def meter_row_entry(row: Sequence[Any], accounts: Sequence[str],
                    ratios: Sequence[tuple[datetime | None, Any, Any]]) -> Entry:
    """The (not yet validated) entry of a meter's row (`meters_query`, times as UTC datetimes), its
    accounts and its ratio versions (since, ct, vt) in order."""
    (_, serial, name, obj, point, model, digits, decimals, tariffs, power, installed, removed,
     bus, address, timeout_ms, retries, schedule, settings) = row
    entry: Entry = {
        "serial": serial, "name": name, "object": "" if obj == NO_OBJECT else obj, "point": point,
        "model": model, "accounts": sorted(accounts), "digits": digits, "decimals": decimals,
        "tariffs": tariffs, **_ratios(ratios),
    }
    optional = {
        "max_power_kw": None if power is None else _decimal(power), "installed": installed, "removed": removed,
        "bus": bus,
        "address": None if address is None else parsed_json(address), "timeout": _duration(timeout_ms),
        "retries": retries, "schedule": None if schedule is None else dict(parsed_json(schedule)),
    }
    entry.update((k, v) for k, v in optional.items() if v is not None)
    entry.update(parsed_json(settings or "{}"))
    return entry


def _ratios(versions: Sequence[tuple[datetime | None, Any, Any]]) -> Entry:
    if not versions:
        return {}
    if len(versions) == 1 and versions[0][0] is None:
        return {"ct_ratio": _decimal(versions[0][1]), "vt_ratio": _decimal(versions[0][2])}
    ct = [{**({} if s is None else {"since": s}), "ratio": _decimal(c)} for s, c, _ in versions]
    vt = [{**({} if s is None else {"since": s}), "ratio": _decimal(v)} for s, _, v in versions]
    return {"ct_ratio": ct, "vt_ratio": vt}


def names(conn: Connection) -> tuple[set[str], set[str]]:
    """The objects and metering points the store knows."""
    objects = {str(n) for n in conn.execute(select(objects_table.c.name)).scalars()}
    points = {str(c) for c in conn.execute(select(metering_points_table.c.code)).scalars()}
    return objects, points


# --- writing ----------------------------------------------------------------------------


def _bus_row(entry: Entry) -> dict[str, Any]:
    return {
        "name": entry["name"],
        "kind": entry["kind"],
        "url": entry["url"],
        "timeout_ms": _ms(entry.get("timeout")),
        "retries": entry.get("retries"),
        "retry_backoff_ms": _ms(entry.get("retry_backoff")),
        "schedule": None if entry.get("schedule") is None else _json(entry["schedule"]),
        "settings": _json({k: v for k, v in entry.items() if k not in _BUS_COMMON}),
    }


def write_buses(conn: Connection, entries: Sequence[Entry]) -> None:
    """Insert or update these buses (validated entries)."""
    held = {str(n): int(i) for n, i in conn.execute(select(buses_table.c.name, buses_table.c.id))}
    rows = [_bus_row(e) for e in entries]
    new = [r for r in rows if r["name"] not in held]
    old = [{"k_id": held[r["name"]], **{f"v_{k}": v for k, v in r.items()}} for r in rows if r["name"] in held]
    if new:
        conn.execute(insert(buses_table), new)
    if old:
        columns = [k for k in rows[0] if k != "name"]
        conn.execute(
            update(buses_table)
            .where(buses_table.c.id == bindparam("k_id"))
            .values({k: bindparam(f"v_{k}") for k in columns}),
            [{k: v for k, v in r.items() if k == "k_id" or k[2:] in columns} for r in old],
        )


def write_meters(conn: Connection, meters: Sequence[Meter], entries: Sequence[Entry]) -> dict[str, int]:
    """Insert or update these meters (domain objects and their validated entries, in the same order),
    their points, objects, accounts and ratio versions, and take them back into the registry if retired;
    their ids by serial."""
    points = point_ids(conn, meters, object_ids(conn, meters))
    held = meter_ids(conn, [m.serial for m in meters])
    buses = {str(n): int(i) for n, i in conn.execute(select(buses_table.c.name, buses_table.c.id))}
    field = {
        str(entry["serial"]): {
            "bus_id": buses[entry["bus"]] if entry.get("bus") is not None else None,
            "address": None if entry.get("address") is None else _json(entry["address"]),
            "schedule": None if entry.get("schedule") is None else _json(entry["schedule"]),
            "timeout_ms": _ms(entry.get("timeout")),
            "retries": entry.get("retries"),
            "settings": _json({k: v for k, v in entry.items() if k not in _METER_COMMON}),
            "retired_at": None,  # taken back into the registry, if it was retired
        }
        for entry in entries
    }
    new = [{"serial": m.serial, **meter_fields(m, points[m.point]), **field[m.serial]}
           for m in meters if m.serial not in held]
    if new:
        insert_new(conn, meters_table, new)
        analyze_after_many(conn, "meters", len(new))
    changed = [
        {"k_id": held[m.serial], **{f"v_{k}": v for k, v in both.items()}}
        for m in meters
        if m.serial in held
        for both in [meter_fields(m, points[m.point]) | field[m.serial]]
    ]
    if changed:
        columns = [k[2:] for k in changed[0] if k != "k_id"]
        statement = update(meters_table).where(meters_table.c.id == bindparam("k_id")).values(
            {c: bindparam(f"v_{c}") for c in columns})
        for offset in range(0, len(changed), CHUNK):
            conn.execute(statement, changed[offset : offset + CHUNK])
    ids = meter_ids(conn, [m.serial for m in meters])
    # accounts and ratios of these meters only (the others' stay as they are)
    sync_accounts(conn, meters, ids)
    sync_ratios(conn, meters, ids)
    return ids


def retire_meters(conn: Connection, serials: Sequence[str], at: datetime) -> None:
    """Take these meters out of the registry (their rows and readings stay)."""
    for offset in range(0, len(serials), CHUNK):
        part = list(serials[offset : offset + CHUNK])
        conn.execute(update(meters_table).where(meters_table.c.serial.in_(part)).values(retired_at=at, bus_id=None))


def delete_buses(conn: Connection, bus_names: Sequence[str]) -> None:
    """Remove these buses (no meter in the registry may be on them)."""
    if bus_names:
        ids = select(buses_table.c.id).where(buses_table.c.name.in_(list(bus_names))).scalar_subquery()
        conn.execute(update(meters_table).where(meters_table.c.bus_id.in_(ids)).values(bus_id=None))
        conn.execute(delete(buses_table).where(buses_table.c.name.in_(list(bus_names))))


def base_without_meters(config: Config) -> Config:
    """`config` with no buses or meters: the sections every registry entry is validated under."""
    return config.model_copy(update={"buses": [], "meters": []})
