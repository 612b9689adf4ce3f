"""The whole registry read for a running process, validated once per shape of meter.

A registry of 100,000 meters holds a few shapes: the same model, register, ratios, bus,
schedule and protocol settings, with only the serial, name, object, point, address and
accounts of each meter its own. The rows are read as the database driver gives them (no
conversion per value); meters are grouped by the raw values of their shape columns; the first
meter of each shape is made an entry (`meter_row_entry`, as `read_meters` makes every one) and
validated with the buses by the configuration's rules (`registry_config`); every other meter of
its shape is a copy of it with its own values (`amr.config_alike.copy_model`), and its domain
meter a copy of the first one's (`Meter.alike`). What spans meters is checked for all of them:
no address twice on a bus (serials are unique in the table). The result equals what
`stored_config` and `Config.meter_objects` give, at a fraction of the cost.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection

from amr.config import Config, MeterConfig, meter_object
from amr.config_alike import copy_model
from amr.core.meters import Meter
from amr.errors import ConfigError
from amr.registry.entries import REGISTRY, Entry, registry_config
from amr.registry.rows import NO_OBJECT
from amr.registry.stored import METER_COLUMNS, base_without_meters, meter_row_entry, parsed_json, read_buses
from amr.store.models import UTCDateTime

_METERS = (
    f"SELECT {METER_COLUMNS} FROM meters m "
    "JOIN metering_points p ON p.id = m.point_id JOIN objects o ON o.id = p.object_id "
    "LEFT JOIN buses b ON b.id = m.bus_id WHERE m.retired_at IS NULL ORDER BY m.serial"
)
_ACCOUNTS = "SELECT meter_id, account FROM meter_accounts"
_RATIOS = "SELECT meter_id, since, ct, vt FROM meter_ratios ORDER BY meter_id, version"
_SHAPE = (5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17)  # model .. bus, timeout .. settings (`METER_COLUMNS`)
_TIMES = (10, 11)  # installed, removed


def shaped_registry(conn: Connection, base: Config) -> tuple[Config, list[Meter]]:
    """`base` with the registry's buses and meters (validated once per shape), and the domain meters
    with their store ids, in the order of their serials; `ConfigError` naming the entry and the key
    when a stored entry no longer validates."""
    utc = UTCDateTime().process_result_value
    dialect = conn.dialect
    rows = conn.exec_driver_sql(_METERS).all()
    accounts: dict[int, list[str]] = {}
    for meter_id, account in conn.exec_driver_sql(_ACCOUNTS).all():
        accounts.setdefault(meter_id, []).append(str(account))
    ratios: dict[int, list[tuple[Any, Any, Any]]] = {}
    for meter_id, since, ct, vt in conn.exec_driver_sql(_RATIOS).all():
        ratios.setdefault(meter_id, []).append((since, ct, vt))
    shapes: dict[tuple[Any, ...], int] = {}
    firsts: list[Entry] = []
    kinds: list[int] = []
    for row in rows:
        versions = ratios.get(row[0], ())
        key = (*[row[i] for i in _SHAPE], *versions)
        kind = shapes.get(key)
        if kind is None:
            kind = shapes[key] = len(firsts)
            typed = [*row]
            for i in _TIMES:
                typed[i] = utc(row[i], dialect)
            firsts.append(meter_row_entry(typed, accounts.get(row[0], []),
                                          [(utc(s, dialect), ct, vt) for s, ct, vt in versions]))
        kinds.append(kind)
    buses = read_buses(conn)
    try:
        checked = registry_config(base_without_meters(base), buses, firsts)
    except ConfigError as exc:
        raise ConfigError(_named(str(exc), buses, firsts)) from None
    templates = checked.meters
    tz = base.site.tz
    makers = [meter_object(cfg, tz).kind_maker() for cfg in templates]
    configs: list[MeterConfig] = []
    meters: list[Meter] = []
    addresses: dict[tuple[str | None, Any], str] = {}
    for row, kind in zip(rows, kinds, strict=True):
        meter_id, serial, name, obj, point, address = row[0], row[1], row[2], row[3], row[4], row[13]
        own = {
            "serial": serial, "name": name, "object": "" if obj == NO_OBJECT else obj, "point": point,
            "address": None if address is None else parsed_json(address),
            "accounts": sorted(accounts.get(meter_id, ())),
        }
        if own["address"] is not None:
            _one_address(addresses, row[12], own["address"], serial)
        configs.append(copy_model(templates[kind], own))
        meters.append(makers[kind](serial, name or serial, own["object"], point or serial,
                                         tuple(own["accounts"]), meter_id))
    return checked.model_copy(update={"meters": configs}), meters


def _named(message: str, buses: list[Entry], meters: list[Entry]) -> str:
    """`message` with ``meters[i]`` and ``buses[i]`` (places in what was validated) named by serial and name."""
    message = re.sub(r"meters\[(\d+)\](?: \([^)]*\))?", lambda m: f"meter {meters[int(m[1])]['serial']}", message)
    return re.sub(r"buses\[(\d+)\]", lambda m: f"bus {buses[int(m[1])]['name']}", message)


def _one_address(seen: dict[tuple[str | None, Any], str], bus: str | None, address: Any, serial: str) -> None:
    if type(address) not in (int, str):
        raise ConfigError(f"{REGISTRY}: meter {serial}: address {address!r} is not a number or text; "
                          "set it again with amr registry apply or the admin API")
    key = (bus, str(address))
    other = seen.setdefault(key, serial)
    if other != serial:
        raise ConfigError(f"{REGISTRY}: meter {serial}: address {address} on bus {bus!r} is already meter {other}; "
                          "every meter on a bus needs its own address")

