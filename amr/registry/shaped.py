"""The whole registry read for a running process, validated once per shape of meter.

A registry of 100,000 meters holds a few shapes: the same model, register, ratios, bus,
schedule and protocol settings, with only the serial, name, object, point, address and
accounts of each meter its own. The rows are read as the database driver gives them (no
conversion per value); meters are grouped by the raw values of their shape columns; the first
meter of each shape is made an entry (`meter_row_entry`, as `read_meters` makes every one) and
validated with the buses by the configuration's rules (`registry_config`); every other meter of
its shape is a copy of it with its own values (`amr.config_alike.model_maker`), and its domain
meter a copy of the first one's (`Meter.kind_maker`). What spans meters is checked for all of
them: no address twice on a bus (serials are unique in the table). Each address is judged by its
bus kind's check too, but a stored one it refuses (written by a release that judged less) is
logged, not refused: the registry loads, that meter's polls fail, and it can be corrected (see
`amr.config.stored_entries`). The result equals what `stored_config` and `Config.meter_objects`
give, at a fraction of the cost.
"""

from __future__ import annotations

import logging
import re
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect

from amr.config import Config, MeterConfig, address_problem, meter_object, stored_entries
from amr.config_alike import model_maker
from amr.core.listing import first_few
from amr.core.meters import Meter
from amr.drivers.registry import PROTOCOLS
from amr.errors import ConfigError
from amr.registry.entries import REGISTRY, Entry, registry_config
from amr.registry.rows import NO_OBJECT
from amr.registry.stored import (
    ACCOUNTS_QUERY,
    RATIOS_QUERY,
    base_without_meters,
    meter_row_entry,
    meters_query,
    parsed_json,
    read_buses,
)
from amr.store.models import UTCDateTime

log = logging.getLogger(__name__)

_SHAPE = (5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17)  # model .. bus, timeout .. settings (`meters_query`)
_TIMES = (10, 11)  # installed, removed


def shaped_registry(conn: Connection, base: Config) -> tuple[Config, list[Meter]]:
    """`base` with the registry's buses and meters (validated once per shape), and the domain meters
    with their store ids, in the order of their serials; `ConfigError` naming the entry and the key
    when a stored entry no longer validates."""
    rows, accounts, ratios = _fetch(conn)
    firsts, kinds = _shapes(rows, accounts, ratios, conn.dialect)
    buses = read_buses(conn)
    try:
        with stored_entries():
            checked = registry_config(base_without_meters(base), buses, firsts)
    except ConfigError as exc:
        raise ConfigError(_named(str(exc), buses, firsts)) from None
    templates = checked.meters
    makers = [meter_object(cfg, base.site.tz).kind_maker() for cfg in templates]
    copies = [model_maker(cfg) for cfg in templates]
    kinds_of = {bus.name: bus.kind for bus in checked.buses}
    checks = [None if cfg.bus is None else PROTOCOLS[kinds_of[cfg.bus]].check_address for cfg in templates]
    configs: list[MeterConfig] = []
    meters: list[Meter] = []
    addresses: dict[tuple[str | None, str], str] = {}
    unpollable: list[str] = []
    no_accounts: list[str] = []
    for row, kind in zip(rows, kinds, strict=True):
        meter_id, serial, name, obj, point = row[0], row[1], row[2], row[3], row[4]
        if obj == NO_OBJECT:
            obj = ""
        own_accounts = sorted(accounts.get(meter_id, no_accounts))
        address = None if row[13] is None else parsed_json(row[13])
        if address is not None and addresses.setdefault((row[12], str(address)), serial) != serial:
            raise ConfigError(f"{REGISTRY}: meter {serial}: address {address} on bus {row[12]!r} is already meter "
                              f"{addresses[(row[12], str(address))]}; every meter on a bus needs its own address")
        if address is not None and type(address) is not int and type(address) is not str:
            raise ConfigError(f"{REGISTRY}: meter {serial}: address {address!r} is not a number or text; "
                              "set it again with amr registry apply or the admin API")
        config = copies[kind]({
            "serial": serial, "name": name, "object": obj, "point": point, "address": address,
            "accounts": own_accounts,
        })
        check = checks[kind]
        if check is not None and address is not None and (problem := address_problem(config, check)) is not None:
            unpollable.append(f"{serial} ({problem})")
        configs.append(config)
        meters.append(makers[kind](serial, name or serial, obj, point or serial, tuple(own_accounts), meter_id))
    if unpollable:
        log.warning("%d meter(s) of the registry have an address their protocol cannot poll; their polls fail until "
                    "it is corrected (amr registry apply or the admin API): %s", len(unpollable), first_few(unpollable))
    return checked.model_copy(update={"meters": configs}), meters


def _fetch(conn: Connection) -> tuple[list[Any], dict[int, list[str]], dict[int, list[tuple[Any, Any, Any]]]]:
    """The meters' rows (`meters_query`), accounts and ratio versions, as the database driver gives them
    (the statements compiled for the connection's dialect; none takes a parameter)."""
    def sql(query: Any) -> str:
        return str(query.compile(dialect=conn.dialect))

    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql(meters_query()))
        rows = list(cursor.fetchall())
        accounts: dict[int, list[str]] = {}
        cursor.execute(sql(ACCOUNTS_QUERY))
        for meter_id, account in cursor.fetchall():
            accounts.setdefault(meter_id, []).append(str(account))
        ratios: dict[int, list[tuple[Any, Any, Any]]] = {}
        cursor.execute(sql(RATIOS_QUERY))
        for meter_id, since, ct, vt in cursor.fetchall():
            ratios.setdefault(meter_id, []).append((since, ct, vt))
    finally:
        cursor.close()
    return rows, accounts, ratios


def _shapes(rows: list[Any], accounts: dict[int, list[str]], ratios: dict[int, list[tuple[Any, Any, Any]]],
            dialect: Dialect) -> tuple[list[Entry], list[int]]:
    """The entry of the first meter of each shape, and each row's shape (an index into them)."""
    utc = UTCDateTime().process_result_value
    shape_of = itemgetter(*_SHAPE)
    shapes: dict[tuple[Any, ...], int] = {}
    firsts: list[Entry] = []
    kinds: list[int] = []
    none: tuple[Any, ...] = ()
    for row in rows:
        versions = ratios.get(row[0], none)
        key = (shape_of(row), *versions)
        kind = shapes.get(key)
        if kind is None:
            kind = shapes[key] = len(firsts)
            typed = [*row]
            for i in _TIMES:
                typed[i] = utc(row[i], dialect)
            firsts.append(meter_row_entry(typed, accounts.get(row[0], []),
                                          [(utc(s, dialect), ct, vt) for s, ct, vt in versions]))
        kinds.append(kind)
    return firsts, kinds


def _named(message: str, buses: list[Entry], meters: list[Entry]) -> str:
    """`message` with ``meters[i]`` and ``buses[i]`` (places in what was validated) named by serial and name."""
    message = re.sub(r"meters\[(\d+)\](?: \([^)]*\))?", lambda m: f"meter {meters[int(m[1])]['serial']}", message)
    return re.sub(r"buses\[(\d+)\]", lambda m: f"bus {buses[int(m[1])]['name']}", message)

