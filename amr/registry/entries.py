"""Registry entries: meters and buses in one canonical form, whatever keeps them.

An entry is a dict shaped like the TOML's ``[[meters]]`` / ``[[buses]]`` table (flat: the
protocol's own keys beside the common ones), with every value canonical: names and points
filled in, times in UTC, ratios as their versions, accounts sorted, secrets in clear (the store
keeps them as the file does), and nothing that is not given. A configuration file and the
registry in the store give equal entries for the same meters, so comparing entries is comparing
what the collector would do; and entries are validated by the configuration's own models
(`registry_config`), so the registry accepts exactly what a file would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from amr.config import BusConfig, Config, MeterConfig, ScheduleConfig, config_from_dict
from amr.core.durations import format_duration
from amr.core.meters import Meter, RatioVersion
from amr.errors import ConfigError

Entry = dict[str, Any]
REGISTRY = "meter registry"  # how errors of stored entries name where they are


def plain(value: Any) -> Any:
    """`value` with secrets revealed and models, durations and tuples made plain (lists, dicts, text)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return plain(value.model_dump(exclude_unset=True, by_alias=True))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    return value


def decimal(value: Fraction | Decimal) -> Decimal:
    """A ratio or power as a plain decimal (exact to 6 places, as the store keeps it)."""
    if isinstance(value, Fraction):
        value = (Decimal(value.numerator) / value.denominator).quantize(Decimal("0.000001"))
    whole = value.to_integral_value()
    return whole.quantize(Decimal(1)) if value == whole else value.normalize()


def schedule_entry(schedule: ScheduleConfig | None) -> Entry | None:
    """A schedule as the keys it was given."""
    return None if schedule is None else plain(schedule)


def ratio_entries(versions: Sequence[RatioVersion]) -> Entry:
    """``ct_ratio`` and ``vt_ratio`` of ratio versions: numbers for one version in force since always,
    else lists of ``{ since, ratio }`` steps (one per version)."""
    if len(versions) == 1 and versions[0].since is None:
        return {"ct_ratio": decimal(versions[0].ct), "vt_ratio": decimal(versions[0].vt)}
    ct: list[Entry] = []
    vt: list[Entry] = []
    for version in versions:
        since = {} if version.since is None else {"since": version.since}
        ct.append({**since, "ratio": decimal(version.ct)})
        vt.append({**since, "ratio": decimal(version.vt)})
    return {"ct_ratio": ct, "vt_ratio": vt}


def bus_entry(bus: BusConfig) -> Entry:
    """The canonical entry of a configured bus."""
    entry: Entry = {"name": bus.name, "kind": bus.kind, "url": bus.url}
    for key in ("timeout", "retries", "retry_backoff"):
        if key in bus.model_fields_set:
            entry[key] = plain(getattr(bus, key))
    if bus.schedule is not None:
        entry["schedule"] = schedule_entry(bus.schedule)
    entry.update(plain(bus.settings))
    return entry


def meter_entry(meter: Meter, cfg: MeterConfig) -> Entry:
    """The canonical entry of a configured meter (`meter` is `cfg` as the domain sees it)."""
    entry: Entry = {
        "serial": meter.serial,
        "name": meter.name,
        "object": meter.object,
        "point": meter.point,
        "model": meter.model,
        "accounts": sorted(meter.accounts),
        "digits": meter.digits,
        "decimals": meter.decimals,
        "tariffs": meter.tariffs,
        **ratio_entries(meter.ratios),
    }
    if meter.max_power_kw is not None:
        entry["max_power_kw"] = decimal(meter.max_power_kw)
    for key in ("installed", "removed"):
        if getattr(meter, key) is not None:
            entry[key] = getattr(meter, key)
    for key in ("bus", "address", "timeout", "retries"):
        if getattr(cfg, key) is not None:
            entry[key] = plain(getattr(cfg, key))
    if cfg.schedule is not None:
        entry["schedule"] = schedule_entry(cfg.schedule)
    entry.update(plain(cfg.settings))
    return entry


def config_entries(config: Config) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """The buses by name and the meters by serial of `config`, as canonical entries."""
    buses = {bus.name: bus_entry(bus) for bus in config.buses}
    meters = {m.serial: meter_entry(m, cfg) for m, cfg in zip(config.meter_objects(), config.meters, strict=True)}
    return buses, meters


def registry_config(base: Config, buses: Iterable[Entry], meters: Iterable[Entry], where: str = REGISTRY) -> Config:
    """`base` with these buses and meters, validated by the configuration's rules (each entry by its
    bus kind's settings models, then the cross-references); `ConfigError` naming `where`, the entry
    and the key."""
    data = {"buses": list(buses), "meters": list(meters)}
    try:
        checked = config_from_dict(data, {}, Path(where))
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None
    return base.model_copy(update={"buses": checked.buses, "meters": checked.meters})


def shown(value: Any) -> str:
    """A value of an entry as a person reads it in a list of changes."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {shown(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return repr(value)
    return str(value)
