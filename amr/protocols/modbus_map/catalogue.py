"""The vendor catalogue: the built-in register maps, kept as data in ``profiles.toml``.

A profile's registers are written as a meter's own ``registers`` entries of the configuration
file; `register_spec` turns such an entry into a `RegisterSpec`, for the catalogue and for the
Modbus driver alike.
"""

from __future__ import annotations

import tomllib
import types
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from typing import Any

from amr.core.domain import Channel
from amr.protocols.modbus_map.codec import DEFAULT_MAX_GAP, MAX_READ_REGISTERS, RegisterSpec, RegisterType
from amr.protocols.modbus_map.planning import RegisterKey, RegisterMap


def register_spec(entry: Mapping[str, Any]) -> RegisterSpec:
    """The `RegisterSpec` of one ``registers`` entry (its ``channel``, ``tariff`` and ``count`` aside)."""
    return RegisterSpec(
        int(entry.get("function", 3)),
        int(entry["address"]),
        RegisterType(entry["type"]),
        str(entry.get("unit", "kWh")),
        base=int(entry.get("base", 0)),
        word_order=entry.get("word_order", "big"),
        byte_order=entry.get("byte_order", "big"),
        scale=Decimal(str(entry.get("scale", 1))),
        decimals=entry.get("decimals"),
    )


def register_key(entry: Mapping[str, Any]) -> RegisterKey:
    """The (channel, tariff) one ``registers`` entry fills."""
    return Channel(entry["channel"]), int(entry.get("tariff", 0))


def _load() -> dict[str, RegisterMap]:
    data = tomllib.loads(resources.files(__package__).joinpath("profiles.toml").read_text(encoding="utf-8"))
    maps: dict[str, RegisterMap] = {}
    for name, table in data.items():
        source = data[table["same_as"]] if "same_as" in table else table
        maps[name] = RegisterMap(
            name=name,
            registers={register_key(entry): register_spec(entry) for entry in source["registers"]},
            max_registers=source.get("max_registers", MAX_READ_REGISTERS),
            max_gap=source.get("max_gap", DEFAULT_MAX_GAP),
            notes=source.get("notes", ""),
        )
    return maps


PROFILES: Mapping[str, RegisterMap] = types.MappingProxyType(_load())
"""Built-in register maps by name."""


def profile(name: str) -> RegisterMap:
    """The built-in register map `name`; `KeyError` names the known profiles."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"no register map {name!r}; known: {', '.join(sorted(PROFILES))}") from None
