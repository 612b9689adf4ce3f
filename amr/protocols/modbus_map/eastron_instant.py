"""Eastron SDM630 / SDM120 instantaneous values: input registers (FC 4), IEEE 754 float32, big-endian.

From the maker's "SDM630 Modbus Protocol" (and "SDM120 Modbus Protocol"), table of input registers;
addresses are the 0-based protocol addresses (the documents' 30001 is 0x0000), two registers a
value, the high word first::

    0x0000 / 0x0002 / 0x0004   phase 1 / 2 / 3 line to neutral volts        V
    0x0006 / 0x0008 / 0x000A   phase 1 / 2 / 3 current                      A
    0x000C / 0x000E / 0x0010   phase 1 / 2 / 3 active power                 W (signed: export negative)
    0x001E / 0x0020 / 0x0022   phase 1 / 2 / 3 power factor                 (signed, see below)
    0x0034                     total system power                           W
    0x003E                     total system power factor
    0x0046                     frequency of supply voltages                 Hz

The documents sign the power factor by the nature of the load (positive capacitive, negative
inductive); it is kept as its magnitude, as limits compare it. The SDM120 is single-phase: phase 1
and the frequency only. One read of 0x48 registers from 0x0000 covers every value (the Modbus limit
is 125 a read).
"""

from __future__ import annotations

import math
import struct

FUNCTION = 4
FIRST, COUNT = 0x0000, 0x0048
ADDRESSES: dict[str, int] = {
    "voltage_l1": 0x0000, "voltage_l2": 0x0002, "voltage_l3": 0x0004,
    "current_l1": 0x0006, "current_l2": 0x0008, "current_l3": 0x000A,
    "power_l1": 0x000C, "power_l2": 0x000E, "power_l3": 0x0010,
    "power_factor_l1": 0x001E, "power_factor_l2": 0x0020, "power_factor_l3": 0x0022,
    "power_total": 0x0034, "power_factor_total": 0x003E,
    "frequency": 0x0046,
}
SINGLE_PHASE = ("voltage_l1", "current_l1", "power_l1", "power_factor_l1", "frequency")
PROFILES = {"eastron-sdm630": tuple(ADDRESSES), "eastron-sdm120": SINGLE_PHASE}


def decode(registers: list[int], quantities: tuple[str, ...]) -> dict[str, float]:
    """The `quantities` in the registers of one read of `COUNT` from `FIRST`; ValueError when it is short
    or a value is not a finite number."""
    if len(registers) != COUNT:
        raise ValueError(f"expected {COUNT} registers from 0x{FIRST:04X}, got {len(registers)}")
    found = {}
    for quantity in quantities:
        offset = ADDRESSES[quantity] - FIRST
        value = struct.unpack(">f", struct.pack(">HH", registers[offset], registers[offset + 1]))[0]
        if not math.isfinite(value):
            raise ValueError(f"{quantity} at 0x{ADDRESSES[quantity]:04X} is not a number")
        found[quantity] = abs(value) if quantity.startswith("power_factor") else value
    return found


def encode(values: dict[str, float]) -> dict[int, int]:
    """Register address → 16-bit word for `values` (what a meter serves; the simulator's side)."""
    words: dict[int, int] = {}
    for quantity, value in values.items():
        high, low = struct.unpack(">HH", struct.pack(">f", value))
        words[ADDRESSES[quantity]], words[ADDRESSES[quantity] + 1] = high, low
    return words
