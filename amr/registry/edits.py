"""Editing the registry one thing at a time (the admin API): a meter or a bus put, removed, a meter
replaced on its point, a new transformer ratio from a date.

Each edit is one transaction under the registry's lock, validated by the configuration's rules
on what it touches — the meter with its bus (by the bus kind's settings models, the schedule
against the timeout), the bus with every meter on it — and, in the store, what a file would check
across all entries: an address taken on a bus, a serial or bus name already used. It bumps the
registry's version and leaves an audit record (who, what, the entry before and after, secrets
hidden), so no edit reads all 100,000 meters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from amr.config import BusConfig, Config, MeterConfig
from amr.core.timetext import local_text
from amr.errors import ConfigError, InputError, NotFound
from amr.registry.entries import Entry, bus_entry, meter_entry, registry_config, shown
from amr.registry.pages import escape_like, lower_function, unicode_lower
from amr.registry.stored import (
    _json,
    base_without_meters,
    bump,
    delete_buses,
    read_buses,
    read_meters,
    retire_meters,
    transaction,
    write_buses,
    write_meters,
)
from amr.store import Store
from amr.store.models import audit_log_table, buses_table, metering_points_table, meters_table, objects_table
from amr.store.store import translate_errors


class Conflict(InputError):
    """The edit contradicts the registry as it is (an address taken, a bus still in use); `russian` says it in
    Russian for the API's answers."""

    def __init__(self, message: str, russian: str) -> None:
        super().__init__(message)
        self.russian = russian


@dataclass(frozen=True)
class Edited:
    """What an edit left: the registry's new version and the entries it wrote (secrets hidden)."""

    version: int
    entries: list[Entry]


HIDDEN = "********"
"""What a secret reads as in every answer and audit record of the registry."""


def hidden(entry: Entry, secrets: set[str]) -> Entry:
    """`entry` with every secret value (and any text containing one) replaced by ``"********"``."""

    def hide(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: hide(v) for k, v in value.items()}
        if isinstance(value, list):
            return [hide(v) for v in value]
        if isinstance(value, str) and any(s and s in value for s in secrets):
            return HIDDEN
        return value

    return {k: hide(v) for k, v in entry.items()}


def secrets_kept(entry: Entry, before: Entry | None, what: str) -> Entry:
    """`entry` as sent back after it was shown: each ``"********"`` where `before` (the stored entry) has a value
    is that value, so that an entry saved unchanged keeps its secrets; a ``"********"`` with nothing stored under
    it is refused (`ConfigError`), never stored as the secret."""

    def kept(new: Any, old: Any, path: str) -> Any:
        if isinstance(new, dict):
            return {k: kept(v, old.get(k) if isinstance(old, dict) else None, f"{path}.{k}" if path else k)
                    for k, v in new.items()}
        if isinstance(new, list):
            return [kept(v, old[i] if isinstance(old, list) and i < len(old) else None, f"{path}[{i}]")
                    for i, v in enumerate(new)]
        if new == HIDDEN:
            if old is None:
                raise ConfigError(f"{what}: {path}: {HIDDEN!r} stands for a secret the registry hides and none is "
                                  "stored there; type the secret itself")
            return old
        return new

    result: Entry = kept(entry, before or {}, "")
    return result


def _secrets_of(*entries: BusConfig | MeterConfig) -> set[str]:
    return {s for e in entries for s in e.settings.secrets()}


def _bus(conn: Connection, name: str) -> Entry | None:
    return next(iter(read_buses(conn, [name])), None)


def _meters_where(conn: Connection, *conditions: Any) -> list[Entry]:
    entries, _ = read_meters(conn, *conditions)
    return entries


def meter_of(conn: Connection, serial: str) -> Entry:
    """The stored entry of meter `serial` (in the registry); `NotFound` otherwise."""
    found = _meters_where(conn, meters_table.c.serial == serial)
    if not found:
        raise NotFound(f"no meter {serial!r} in the registry")
    return found[0]


def _checked_meter(conn: Connection, base: Config, entry: Entry) -> tuple[Config, Entry]:
    """`entry` validated with its bus as a file would validate it, and the store's cross-checks."""
    bus = _bus(conn, str(entry["bus"])) if entry.get("bus") is not None else None
    if entry.get("bus") is not None and bus is None:
        known = ", ".join(
            str(n) for n in conn.execute(select(buses_table.c.name).order_by(buses_table.c.name)).scalars()
        )
        raise ConfigError(f"meter {entry.get('serial')}: bus: unknown bus {entry['bus']!r}; buses: {known or 'none'}")
    config = registry_config(base, [bus] if bus else [], [entry], "meter")
    meter = config.meters[0]
    if meter.bus is not None and meter.address is not None:
        taken = conn.execute(
            select(meters_table.c.serial)
            .join(buses_table, buses_table.c.id == meters_table.c.bus_id)
            .where(
                buses_table.c.name == meter.bus,
                meters_table.c.address == _json(meter.address),
                meters_table.c.serial != meter.serial,
                meters_table.c.retired_at.is_(None),
            )
        ).scalar()
        if taken is not None:
            raise Conflict(
                f"meter {meter.serial}: address {meter.address} on bus {meter.bus!r} is already meter {taken}; "
                "every meter on a bus needs its own address",
                f"счётчик {meter.serial}: адрес {meter.address} на шине {meter.bus!r} уже занят счётчиком {taken}; "
                "у каждого счётчика на шине свой адрес"
            )
    return config, meter_entry(config.meter_objects()[0], meter)


def _audit(conn: Connection, actor: str, action: str, subject: str, reason: str, details: dict[str, Any]) -> None:
    conn.execute(audit_log_table.insert().values(
        at=datetime.now(UTC), actor=actor, action=action, subject=subject, reason=reason,
        details=json.dumps(details, ensure_ascii=False, default=shown),
    ))


def _write_meter(conn: Connection, config: Config) -> Entry:
    meter = config.meters[0]
    domain = config.meter_objects()
    entry = meter_entry(domain[0], meter)
    write_meters(conn, domain, [entry])
    return entry


def put_meter(store: Store, base: Config, entry: Entry, actor: str, reason: str = "") -> tuple[Edited, bool]:
    """Create or replace meter ``entry["serial"]``; the edit and whether the meter is new."""
    with transaction(store) as conn:
        before = _meters_where(conn, meters_table.c.serial == entry.get("serial"))
        entry = secrets_kept(entry, before[0] if before else None, f"meter {entry.get('serial')}")
        config, _ = _checked_meter(conn, base_without_meters(base), entry)
        written = _write_meter(conn, config)
        version = bump(conn)
        secrets = _secrets_of(*config.meters, *config.buses)
        _audit(conn, actor, "registry.meter.put", f"meter {written['serial']}", reason,
               {"before": hidden(before[0], secrets) if before else None, "after": hidden(written, secrets)})
    return Edited(version, [hidden(written, secrets)]), not before


def remove_meter(store: Store, serial: str, actor: str, reason: str = "") -> Edited:
    """Take meter `serial` out of the registry (its readings stay)."""
    with transaction(store) as conn:
        before = meter_of(conn, serial)
        retire_meters(conn, [serial], datetime.now(UTC))
        version = bump(conn)
        _audit(conn, actor, "registry.meter.remove", f"meter {serial}", reason, {"serial": serial})
    return Edited(version, [{"serial": before["serial"]}])


def new_ratio(store: Store, base: Config, serial: str, since: datetime, ct: Decimal | None, vt: Decimal | None,
              actor: str, reason: str = "") -> Edited:
    """A new CT ratio, VT ratio or both of meter `serial` in force from `since` (later than every version
    it has); the one given as None keeps the value in force at `since`."""
    with transaction(store) as conn:
        entry = meter_of(conn, serial)
        steps = _steps(entry)
        last = max((s["since"] for key in steps for s in steps[key] if "since" in s), default=None)
        if last is not None and since <= last:
            raise Conflict(f"meter {serial}: a ratio is in force from {local_text(last, base.site.tz)}; "
                           "a new ratio starts later than every version the meter has",
                           f"счётчик {serial}: коэффициент действует с {local_text(last, base.site.tz)}; "
                           "новый должен начинаться позже всех прежних")
        ct = _latest(steps["ct_ratio"]) if ct is None else ct
        vt = _latest(steps["vt_ratio"]) if vt is None else vt
        entry = {**entry, "ct_ratio": [*steps["ct_ratio"], {"since": since, "ratio": ct}],
                 "vt_ratio": [*steps["vt_ratio"], {"since": since, "ratio": vt}]}
        config, _ = _checked_meter(conn, base_without_meters(base), entry)
        written = _write_meter(conn, config)
        version = bump(conn)
        _audit(conn, actor, "registry.meter.ratio", f"meter {serial}", reason,
               {"since": since.isoformat(), "ct": format(ct, "f"), "vt": format(vt, "f")})
    return Edited(version, [hidden(written, _secrets_of(*config.meters, *config.buses))])


def _latest(steps: list[Entry]) -> Decimal:
    """The ratio of the latest of `steps` (a step without `since` is in force since always)."""
    return Decimal(max(steps, key=lambda s: (s.get("since") is not None, s.get("since") or datetime.min))["ratio"])


def _steps(entry: Entry) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for key in ("ct_ratio", "vt_ratio"):
        value = entry.get(key, Decimal(1))
        out[key] = list(value) if isinstance(value, list) else [{"ratio": value}]
    return out


def replace_on_point(store: Store, base: Config, point: str, at: datetime, new: Entry, actor: str,
                     reason: str = "") -> Edited:
    """Replace the meter in service on metering point `point` at `at`: the old one is removed at `at`
    (its series ends; it is no longer collected), `new` is installed at `at` on the same point and
    object (its own series starts)."""
    with transaction(store) as conn:
        if (
            conn.execute(select(metering_points_table.c.id).where(metering_points_table.c.code == point)).scalar()
            is None
        ):
            raise NotFound(f"no metering point {point!r}")
        serving = [
            e for e in _meters_where(conn, metering_points_table.c.code == point)
            if e.get("removed") is None or e["removed"] > at
        ]
        if len(serving) != 1:
            raise Conflict(f"point {point!r}: {len(serving)} meters are in service at {local_text(at, base.site.tz)}; "
                           "replace names the point's one meter in service",
                           f"точка {point!r}: на {local_text(at, base.site.tz)} в работе счётчиков: {len(serving)}; "
                           "заменить можно единственный работающий счётчик точки")
        old = serving[0]
        if old.get("installed") is not None and old["installed"] >= at:
            raise Conflict(f"meter {old['serial']} is installed at {local_text(old['installed'], base.site.tz)}; "
                           "the replacement must come later",
                           f"счётчик {old['serial']} установлен {local_text(old['installed'], base.site.tz)}; "
                           "замена должна быть позже")
        if new.get("serial") == old["serial"]:
            raise Conflict(f"meter {old['serial']} is the one being replaced; the new meter needs its own serial",
                           f"счётчик {old['serial']} и есть заменяемый; у нового счётчика свой заводской номер")
        if _meters_where(conn, meters_table.c.serial == new.get("serial")):
            raise Conflict(f"meter {new.get('serial')} is already in the registry; replace with a new meter",
                           f"счётчик {new.get('serial')} уже есть в реестре; замените новым счётчиком")
        common = ("serial", "name", "object", "point", "model", "accounts", "digits", "decimals", "tariffs",
                  "ct_ratio", "vt_ratio", "max_power_kw", "installed")
        ended = {k: v for k, v in old.items() if k in common} | {"removed": at}  # no longer on a bus
        started = {"object": old.get("object", ""), "accounts": old.get("accounts", []), **new,
                   "point": point, "installed": at}
        old_config, _ = _checked_meter(conn, base_without_meters(base), ended)
        new_config, _ = _checked_meter(conn, base_without_meters(base), started)
        written = [_write_meter(conn, old_config), _write_meter(conn, new_config)]
        version = bump(conn)
        secrets = _secrets_of(*new_config.meters, *new_config.buses)
        _audit(conn, actor, "registry.meter.replace", f"point {point}", reason,
               {"at": at.isoformat(), "old": old["serial"], "new": hidden(written[1], secrets)})
    return Edited(version, [hidden(w, secrets) for w in written])


def put_bus(store: Store, base: Config, entry: Entry, actor: str, reason: str = "") -> tuple[Edited, bool]:
    """Create or replace bus ``entry["name"]``, checked with every meter on it; the edit and whether it is new."""
    with transaction(store) as conn:
        before = _bus(conn, str(entry.get("name", "")))
        entry = secrets_kept(entry, before, f"bus {entry.get('name')}")
        on_it = _meters_where(conn, buses_table.c.name == entry.get("name")) if before else []
        config = registry_config(base_without_meters(base), [entry], on_it, f"bus {entry.get('name')}")
        written = bus_entry(config.buses[0])
        write_buses(conn, [written])
        version = bump(conn)
        secrets = _secrets_of(*config.buses)
        _audit(conn, actor, "registry.bus.put", f"bus {written['name']}", reason,
               {"before": hidden(before, secrets) if before else None, "after": hidden(written, secrets)})
    return Edited(version, [hidden(written, secrets)]), before is None


def remove_bus(store: Store, name: str, actor: str, reason: str = "") -> Edited:
    """Remove bus `name`; refused while a meter of the registry is on it."""
    with transaction(store) as conn:
        if _bus(conn, name) is None:
            raise NotFound(f"no bus {name!r} in the registry")
        users = conn.execute(
            select(func.count()).select_from(meters_table).join(buses_table, buses_table.c.id == meters_table.c.bus_id)
            .where(buses_table.c.name == name, meters_table.c.retired_at.is_(None))
        ).scalar_one()
        if users:
            raise Conflict(f"bus {name!r} has {users} meter(s); move or remove them first",
                           f"на шине {name!r} счётчиков: {users}; сначала перенесите или удалите их")
        delete_buses(conn, [name])
        version = bump(conn)
        _audit(conn, actor, "registry.bus.remove", f"bus {name}", reason, {"name": name})
    return Edited(version, [{"name": name}])


def page_of_meters(store: Store, search: str | None, after: str | None, limit: int) -> tuple[list[Entry], str | None]:
    """Meters of the registry by serial, `limit` after serial `after` (keyset paging: as fast on the
    last page as on the first), those whose serial starts with `search` or whose name or point holds
    it (any case); and the serial to continue after (None on the last page)."""
    conditions: list[Any] = []
    if after is not None:
        conditions.append(meters_table.c.serial > after)
    lower = getattr(func, lower_function(store.engine.dialect.name == "sqlite"))
    if search:
        needle, start = escape_like(search.lower()), escape_like(search)
        conditions.append(or_(
            meters_table.c.serial.like(f"{start}%", escape="\\"),
            lower(meters_table.c.name).like(f"%{needle}%", escape="\\"),
            lower(metering_points_table.c.code).like(f"%{needle}%", escape="\\"),
        ))
    with translate_errors(), store.engine.connect() as conn:
        unicode_lower(conn)
        entries, _ = read_meters(conn, and_(*conditions) if conditions else None, limit=limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        buses = read_buses(conn, sorted({str(e["bus"]) for e in entries if e.get("bus") is not None}))
    kinds = {str(b["name"]): str(b["kind"]) for b in buses}
    return [hidden(e, _meter_secrets(e, kinds)) for e in entries], (entries[-1]["serial"] if more else None)


def _meter_secrets(entry: Entry, kinds: dict[str, str]) -> set[str]:
    """The secret values of a stored meter entry, by its bus kind's settings model."""
    try:
        return _secrets_of(MeterConfig.model_validate(entry, context={"bus_kinds": kinds}))
    except ValueError:  # an entry a newer version refuses: hide every text of its protocol keys
        return {v for k, v in entry.items() if isinstance(v, str) and k not in ("serial", "name", "object", "point")}


def one_meter(store: Store, serial: str) -> Entry:
    """The entry of meter `serial` (secrets hidden); `NotFound` when it is not in the registry."""
    with translate_errors(), store.engine.connect() as conn:
        entry = meter_of(conn, serial)
        kinds = {str(b["name"]): str(b["kind"]) for b in read_buses(conn)}
    return hidden(entry, _meter_secrets(entry, kinds))


def bus_entries(conn: Connection, names: list[str]) -> list[Entry]:
    """The entries of the buses named, by name (secrets hidden)."""
    out = []
    for entry in read_buses(conn, names):
        try:
            secrets = _secrets_of(BusConfig.model_validate(entry))
        except ValueError:
            secrets = {v for k, v in entry.items() if isinstance(v, str) and k not in ("name", "kind", "url")}
        out.append(hidden(entry, secrets))
    return out


def _object_id(conn: Connection, name: str) -> int | None:
    found = conn.execute(select(objects_table.c.id).where(objects_table.c.name == name)).scalar()
    return None if found is None else int(found)


def _named(name: str, what: str) -> str:
    text = name.strip()
    if not text or len(text) > (200 if what == "object" else 100):
        raise InputError(f"{what} name {name!r}: give 1 to {200 if what == 'object' else 100} characters")
    return text


def put_object(store: Store, name: str, new_name: str, actor: str, reason: str = "") -> tuple[int, bool]:
    """Create object `name`, or rename it to `new_name` (its points and meters follow); the registry's
    version and whether the object is new."""
    new_name = _named(new_name, "object")
    with transaction(store) as conn:
        held = _object_id(conn, name)
        if held is None:
            if new_name != name:
                raise NotFound(f"no object {name!r} to rename")
            conn.execute(objects_table.insert().values(name=new_name))
        elif new_name != name:
            if _object_id(conn, new_name) is not None:
                raise Conflict(f"object {new_name!r} exists already; choose another name",
                               f"объект {new_name!r} уже есть; выберите другое название")
            conn.execute(objects_table.update().where(objects_table.c.id == held).values(name=new_name))
        version = bump(conn)
        _audit(conn, actor, "registry.object.put", f"object {new_name}", reason, {"before": name, "after": new_name})
    return version, held is None


def remove_object(store: Store, name: str, actor: str, reason: str = "") -> int:
    """Remove an object that has no metering point."""
    with transaction(store) as conn:
        held = _object_id(conn, name)
        if held is None:
            raise NotFound(f"no object {name!r}")
        points = conn.execute(
            select(func.count()).select_from(metering_points_table).where(metering_points_table.c.object_id == held)
        ).scalar_one()
        if points:
            raise Conflict(f"object {name!r} has {points} metering point(s); move or remove them first",
                           f"у объекта {name!r} точек учёта: {points}; сначала перенесите или удалите их")
        conn.execute(objects_table.delete().where(objects_table.c.id == held))
        version = bump(conn)
        _audit(conn, actor, "registry.object.remove", f"object {name}", reason, {"name": name})
    return version


def put_point(store: Store, code: str, object_name: str, actor: str, reason: str = "") -> tuple[int, bool]:
    """Create metering point `code` in object `object_name`, or move it there (with its meters); the
    object is made when it does not exist. The registry's version and whether the point is new."""
    code, object_name = _named(code, "point"), _named(object_name, "object")
    with transaction(store) as conn:
        object_id = _object_id(conn, object_name)
        if object_id is None:
            conn.execute(objects_table.insert().values(name=object_name))
            object_id = _object_id(conn, object_name)
        held = conn.execute(
            select(metering_points_table.c.id, metering_points_table.c.object_id).where(
                metering_points_table.c.code == code
            )
        ).first()
        if held is None:
            conn.execute(metering_points_table.insert().values(code=code, object_id=object_id))
        else:
            conn.execute(
                metering_points_table.update().where(metering_points_table.c.id == held[0]).values(object_id=object_id)
            )
        version = bump(conn)
        _audit(conn, actor, "registry.point.put", f"point {code}", reason, {"object": object_name})
    return version, held is None


def remove_point(store: Store, code: str, actor: str, reason: str = "") -> int:
    """Remove a metering point no meter has ever been on (a meter's history keeps its point)."""
    with transaction(store) as conn:
        held = conn.execute(select(metering_points_table.c.id).where(metering_points_table.c.code == code)).scalar()
        if held is None:
            raise NotFound(f"no metering point {code!r}")
        meters = conn.execute(
            select(func.count()).select_from(meters_table).where(meters_table.c.point_id == held)
        ).scalar_one()
        if meters:
            raise Conflict(f"point {code!r} has {meters} meter(s), in service or in its history; it stays",
                           f"у точки {code!r} счётчиков (в работе или в истории): {meters}; она остаётся")
        conn.execute(metering_points_table.delete().where(metering_points_table.c.id == held))
        version = bump(conn)
        _audit(conn, actor, "registry.point.remove", f"point {code}", reason, {"code": code})
    return version
