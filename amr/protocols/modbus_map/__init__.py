"""Modbus energy-register maps, without I/O: `codec` (where a value lives and how its registers
encode it, in exact Wh), `planning` (the fewest reads that fetch a meter's registers; its
`RegisterMap`) and `catalogue` (the built-in vendor profiles, data in ``profiles.toml``).
The names below are the public face: ``from amr.protocols.modbus_map import ...``.
"""

from __future__ import annotations

from amr.protocols.modbus_map.catalogue import PROFILES, profile, register_key, register_spec
from amr.protocols.modbus_map.codec import (
    DEFAULT_MAX_GAP,
    MAX_DECIMALS,
    MAX_READ_REGISTERS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    Order,
    RegisterSpec,
    RegisterType,
    decode,
    encode,
    register_count,
)
from amr.protocols.modbus_map.planning import ReadBlock, RegisterKey, RegisterMap, plan_reads

__all__ = [
    "DEFAULT_MAX_GAP", "MAX_DECIMALS", "MAX_READ_REGISTERS", "PROFILES", "READ_HOLDING_REGISTERS",
    "READ_INPUT_REGISTERS", "Order", "ReadBlock", "RegisterKey", "RegisterMap", "RegisterSpec", "RegisterType",
    "decode", "encode", "plan_reads", "profile", "register_count", "register_key", "register_spec",
]
