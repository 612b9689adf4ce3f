"""Modbus energy registers: where a value lives, how its registers encode it, and the exact Wh.

Energy meters keep their A+/A-/R+/R- registers at model-specific places and in
model-specific formats. A `RegisterSpec` says everything needed to turn the
16-bit registers a read returns into exact integer Wh/varh:

- function code: 3 (read holding registers) or 4 (read input registers);
- address, and `base`: 0 if it is the protocol address sent in the request
  (what the manual may call "physical", "offset" or "address on the wire"),
  1 if it is a 1-based register number (Schneider's "register 3204",
  Modicon-style numbers without the 3xxxx/4xxxx prefix). The request address
  is ``address - base``, computed in one place (`RegisterSpec.protocol_address`);
- value type and how many registers it spans (`register_count`);
- word order (which register holds the most significant 16 bits) and byte
  order (which byte of each register is the more significant)::

      value bytes, most significant first:  A B C D   (32-bit example)
      word big,    byte big    (ABCD):  reg0 = A B   reg1 = C D
      word little, byte big    (CDAB):  reg0 = C D   reg1 = A B
      word big,    byte little (BADC):  reg0 = B A   reg1 = D C
      word little, byte little (DCBA):  reg0 = D C   reg1 = B A

  (``reg0 = A B`` means register 0 has A in its high byte, B in its low byte);
- scale (a Decimal the raw value is multiplied by, e.g. 0.1) and unit;
- for floats, `decimals`: the float is converted to the nearest Decimal with
  that many decimals (half-even) before anything else, so a float32 reading of
  1234.5670166 kWh with decimals=3 is taken as exactly 1234.567 kWh.

Exactness: integer registers × scale × unit factor usually land on whole Wh.
When they do not (a ×0.0001 kWh register, a float with more decimals than a
Wh), the value is rounded to the nearest Wh, ties to even. Negative values of
signed types are returned as they are; validation refuses them as malformed.
"""

from __future__ import annotations

import decimal
import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from amr.errors import ProtocolError
from amr.protocols.units import to_wh, unit_factor

READ_HOLDING_REGISTERS = 3
READ_INPUT_REGISTERS = 4
MAX_READ_REGISTERS = 125  # Modbus limit for one read of holding or input registers
DEFAULT_MAX_GAP = 8  # unused registers a read may span to join two ranges
MAX_DECIMALS = 9

_PRECISION = 60  # decimal digits for exact arithmetic on 64-bit values


class RegisterType(enum.StrEnum):
    """How the bytes of one or more registers encode a number."""

    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    UINT64 = "uint64"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"


class Order(enum.StrEnum):
    """Byte order within a register, or word order across registers."""

    BIG = "big"  # most significant first
    LITTLE = "little"  # least significant first


_COUNTS: dict[RegisterType, int] = {
    RegisterType.UINT16: 1,
    RegisterType.INT16: 1,
    RegisterType.UINT32: 2,
    RegisterType.INT32: 2,
    RegisterType.UINT64: 4,
    RegisterType.INT64: 4,
    RegisterType.FLOAT32: 2,
    RegisterType.FLOAT64: 4,
}
_SIGNED = frozenset({RegisterType.INT16, RegisterType.INT32, RegisterType.INT64})
_FLOAT_FORMATS: dict[RegisterType, str] = {RegisterType.FLOAT32: ">f", RegisterType.FLOAT64: ">d"}


def register_count(value_type: RegisterType | str) -> int:
    """How many 16-bit registers a value of `value_type` spans."""
    return _COUNTS[RegisterType(value_type)]


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """Where one energy value lives in a meter's register map and how it is encoded."""

    function: int  # 3 holding registers, 4 input registers
    address: int  # as documented; see `base`
    value_type: RegisterType
    unit: str  # Wh, kWh, MWh, varh, kvarh, Mvarh
    base: int = 0  # 0: `address` is the protocol address; 1: a 1-based register number
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    scale: Decimal = Decimal(1)
    decimals: int | None = None  # floats only: decimals kept of the float's value

    def __post_init__(self) -> None:
        """Check the spec and normalise enum fields given as strings."""
        object.__setattr__(self, "value_type", RegisterType(self.value_type))
        object.__setattr__(self, "word_order", Order(self.word_order))
        object.__setattr__(self, "byte_order", Order(self.byte_order))
        if self.function not in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
            raise ValueError(f"function code is 3 (holding) or 4 (input); got {self.function}")
        if self.base not in (0, 1):
            raise ValueError(f"base is 0 (protocol address) or 1 (register number); got {self.base}")
        if self.address < self.base:
            raise ValueError(f"a {self.base}-based address cannot be {self.address}")
        if self.protocol_address + self.count > 0x10000:
            raise ValueError(f"registers {self.protocol_address}.. run past 65535")
        unit_factor(self.unit)  # raises for an unknown unit
        if not isinstance(self.scale, Decimal) or not self.scale.is_finite() or self.scale <= 0:
            raise ValueError(f"scale is a positive Decimal such as Decimal('0.1'); got {self.scale!r}")
        if self.value_type in _FLOAT_FORMATS:
            if self.decimals is None or not 0 <= self.decimals <= MAX_DECIMALS:
                raise ValueError(
                    f"{self.value_type.value} needs decimals 0..{MAX_DECIMALS}: "
                    f"how many decimals of the float to keep"
                )
        elif self.decimals is not None:
            raise ValueError("decimals applies to float types only")

    @property
    def protocol_address(self) -> int:
        """The 0-based address sent in the request: the one place `base` is applied."""
        return self.address - self.base

    @property
    def count(self) -> int:
        """Registers this value spans."""
        return _COUNTS[self.value_type]

    @property
    def end(self) -> int:
        """The protocol address just after this value."""
        return self.protocol_address + self.count


def _byte_order(spec: RegisterSpec) -> Literal["big", "little"]:
    return "big" if spec.byte_order is Order.BIG else "little"


def _value_bytes(spec: RegisterSpec, registers: Sequence[int]) -> bytes:
    """The value's bytes, most significant first, from the registers as read."""
    if len(registers) != spec.count:
        raise ProtocolError(
            f"{spec.value_type.value} at {spec.protocol_address} spans {spec.count} "
            f"registers; got {len(registers)}"
        )
    for register in registers:
        if not 0 <= register <= 0xFFFF:
            raise ProtocolError(f"a register holds 0..65535; got {register}")
    words = list(registers) if spec.word_order is Order.BIG else list(reversed(registers))
    byte_order = _byte_order(spec)
    return b"".join(word.to_bytes(2, byte_order) for word in words)


def _registers(spec: RegisterSpec, data: bytes) -> list[int]:
    """The inverse of `_value_bytes`."""
    byte_order = _byte_order(spec)
    words = [int.from_bytes(data[i : i + 2], byte_order) for i in range(0, len(data), 2)]
    return words if spec.word_order is Order.BIG else list(reversed(words))


def _quantum(spec: RegisterSpec) -> Decimal:
    """The step a float value is rounded to: 10 ** -decimals."""
    return Decimal(1).scaleb(-(spec.decimals or 0))


def decode(spec: RegisterSpec, registers: Sequence[int]) -> int:
    """Integer Wh/varh from the registers of one value, as a read returns them.

    Raises `ProtocolError` for the wrong number of registers, a register out
    of 0..65535, or a float that is NaN or infinite.
    """
    data = _value_bytes(spec, registers)
    with decimal.localcontext() as context:
        context.prec = _PRECISION
        float_format = _FLOAT_FORMATS.get(spec.value_type)
        if float_format is None:
            raw = Decimal(int.from_bytes(data, "big", signed=spec.value_type in _SIGNED))
        else:
            number = struct.unpack(float_format, data)[0]
            raw = Decimal(number)
            if not raw.is_finite():
                raise ProtocolError(
                    f"{spec.value_type.value} at {spec.protocol_address} is {number}, not an energy"
                )
            raw = raw.quantize(_quantum(spec), rounding=decimal.ROUND_HALF_EVEN)
        return to_wh(raw * spec.scale, spec.unit)


def encode(spec: RegisterSpec, wh: int) -> list[int]:
    """The registers a meter would hold for `wh` Wh/varh (for simulators).

    A register shows completed units only, so a value finer than the register's
    resolution is cut off toward zero (1234567 Wh in a ×0.1 kWh register reads
    12345, i.e. 1234.5 kWh). Floats are the nearest float to the value with
    `decimals` decimals. Raises `ValueError` when the value does not fit.
    """
    with decimal.localcontext() as context:
        context.prec = _PRECISION
        amount = Decimal(wh) / unit_factor(spec.unit) / spec.scale
        float_format = _FLOAT_FORMATS.get(spec.value_type)
        if float_format is None:
            raw = int(amount.to_integral_value(rounding=decimal.ROUND_DOWN))
            bits = 16 * spec.count
            signed = spec.value_type in _SIGNED
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            if not low <= raw <= high:
                raise ValueError(f"{wh} Wh is {raw} raw, outside {spec.value_type.value}")
            data = raw.to_bytes(2 * spec.count, "big", signed=signed)
        else:
            value = amount.quantize(_quantum(spec), rounding=decimal.ROUND_DOWN)
            try:
                data = struct.pack(float_format, float(value))
            except OverflowError:
                raise ValueError(f"{wh} Wh does not fit {spec.value_type.value}") from None
    return _registers(spec, data)
