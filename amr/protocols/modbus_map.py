"""Modbus energy-register maps as data: where each channel lives, how to decode it.

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

`plan_reads` groups the registers of one meter into as few requests as
possible: same function code, contiguous or separated by at most `max_gap`
unused registers, at most `max_registers` per request (125 is the Modbus
limit for function codes 3 and 4; some meters accept fewer). Reading across a
gap costs two bytes per unused register, a new request costs a round trip;
but a meter may answer "illegal data address" for a range with holes in its
map, in which case set its `max_gap` to 0.
"""

from __future__ import annotations

import decimal
import enum
import struct
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from amr.domain import Channel, Values
from amr.errors import ProtocolError
from amr.protocols.units import to_wh, unit_factor, unit_fits_channel

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


# --- codec ----------------------------------------------------------------------


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


# --- read planning ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: `count` registers from protocol address `address`."""

    function: int
    address: int  # 0-based protocol address of the first register
    count: int
    specs: tuple[RegisterSpec, ...]  # the values this read covers

    def registers_of(self, spec: RegisterSpec, registers: Sequence[int]) -> list[int]:
        """The registers of `spec` within the registers this read returned."""
        if len(registers) != self.count:
            raise ProtocolError(f"read of {self.count} registers at {self.address} returned {len(registers)}")
        offset = spec.protocol_address - self.address
        if spec.function != self.function or offset < 0 or offset + spec.count > self.count:
            raise ValueError(f"register {spec.protocol_address} is not in this read")
        return list(registers[offset : offset + spec.count])


def plan_reads(
    specs: Iterable[RegisterSpec],
    max_registers: int = MAX_READ_REGISTERS,
    max_gap: int = DEFAULT_MAX_GAP,
) -> list[ReadBlock]:
    """The fewest reads covering `specs`: same function code, gaps up to `max_gap`.

    Specs are taken in address order per function code, and each read grows
    while the next spec starts at most `max_gap` registers after the read's
    end and the read stays within `max_registers`. (Greedy; for specs that do
    not overlap this gives the fewest reads.) Reads come out ordered by
    function code, then address.
    """
    if max_registers < 1 or max_gap < 0:
        raise ValueError("max_registers must be at least 1 and max_gap at least 0")
    ordered = sorted(set(specs), key=lambda s: (s.function, s.protocol_address, s.end, repr(s)))
    blocks: list[ReadBlock] = []
    group: list[RegisterSpec] = []
    start = end = 0
    for spec in ordered:
        if spec.count > max_registers:
            raise ValueError(f"a {spec.value_type.value} cannot be read {max_registers} at a time")
        joins = (
            bool(group)
            and spec.function == group[0].function
            and spec.protocol_address - end <= max_gap
            and max(end, spec.end) - start <= max_registers
        )
        if joins:
            group.append(spec)
            end = max(end, spec.end)
            continue
        if group:
            blocks.append(ReadBlock(group[0].function, start, end - start, tuple(group)))
        group, start, end = [spec], spec.protocol_address, spec.end
    if group:
        blocks.append(ReadBlock(group[0].function, start, end - start, tuple(group)))
    return blocks


# --- register maps -------------------------------------------------------------

RegisterKey = tuple[Channel, int]  # (channel, tariff 0..4)


@dataclass(frozen=True)
class RegisterMap:
    """The energy registers of one meter model: (channel, tariff) → `RegisterSpec`."""

    name: str
    registers: Mapping[RegisterKey, RegisterSpec]
    max_registers: int = MAX_READ_REGISTERS  # the meter's limit per read
    max_gap: int = DEFAULT_MAX_GAP
    notes: str = ""
    _by_spec: Mapping[RegisterSpec, tuple[RegisterKey, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check tariffs and units against channels; freeze the mapping."""
        by_spec: dict[RegisterSpec, list[RegisterKey]] = {}
        for (channel, tariff), spec in self.registers.items():
            if not 0 <= tariff <= 4:
                raise ValueError(f"{self.name}: tariff is 0..4; got {tariff}")
            if not unit_fits_channel(spec.unit, channel):
                raise ValueError(f"{self.name}: {channel.label} cannot be in {spec.unit}")
            by_spec.setdefault(spec, []).append((channel, tariff))
        object.__setattr__(self, "registers", types.MappingProxyType(dict(self.registers)))
        frozen = {spec: tuple(keys) for spec, keys in by_spec.items()}
        object.__setattr__(self, "_by_spec", types.MappingProxyType(frozen))

    def plan(self) -> list[ReadBlock]:
        """The reads that fetch every register of this map (worked out once; a map never changes)."""
        planned: list[ReadBlock] | None = self.__dict__.get("_plan")
        if planned is None:
            planned = plan_reads(self.registers.values(), self.max_registers, self.max_gap)
            object.__setattr__(self, "_plan", planned)
        return list(planned)

    def decode_reads(self, results: Mapping[ReadBlock, Sequence[int]]) -> dict[int, Values]:
        """Tariff → channel → Wh/varh from the registers each planned read returned."""
        readings: dict[int, Values] = {}
        for block, registers in results.items():
            for spec in block.specs:
                wh = decode(spec, block.registers_of(spec, registers))
                for channel, tariff in self._by_spec.get(spec, ()):
                    readings.setdefault(tariff, {})[channel] = wh
        return readings

    def encode_registers(
        self, readings: Mapping[int, Mapping[Channel, int | None]]
    ) -> dict[int, dict[int, int]]:
        """Function code → protocol address → register value, for a simulator's store.

        Channels that are absent or None are not written.
        """
        store: dict[int, dict[int, int]] = {}
        for (channel, tariff), spec in self.registers.items():
            wh = readings.get(tariff, {}).get(channel)
            if wh is None:
                continue
            words = encode(spec, wh)
            table = store.setdefault(spec.function, {})
            for offset, word in enumerate(words):
                table[spec.protocol_address + offset] = word
        return store


# --- built-in profiles -------------------------------------------------------


def _eastron(name: str) -> RegisterMap:
    # Eastron SDM630 / SDM120: input registers (FC 4), IEEE float32, both orders
    # big-endian, 0-based protocol addresses (the manuals give 30073 = 0x0048 etc.).
    def spec(address: int, unit: str) -> RegisterSpec:
        return RegisterSpec(READ_INPUT_REGISTERS, address, RegisterType.FLOAT32, unit, decimals=2)

    return RegisterMap(
        name=name,
        registers={
            (Channel.A_PLUS, 0): spec(0x0048, "kWh"),  # total import active energy
            (Channel.A_MINUS, 0): spec(0x004A, "kWh"),  # total export active energy
            (Channel.R_PLUS, 0): spec(0x004C, "kvarh"),  # total import reactive energy
            (Channel.R_MINUS, 0): spec(0x004E, "kvarh"),  # total export reactive energy
        },
        notes=(
            "float32 kWh kept to 2 decimals (10 Wh); above 131072 kWh a float32 "
            "step exceeds 0.01 kWh, so the last digit is the float's, not the meter's"
        ),
    )


def _schneider_iem3000() -> RegisterMap:
    # Schneider iEM3000 series (iEM3150 ... iEM3355), user manual DOCA0005EN:
    # holding registers (FC 3), Int64, most significant register first. The
    # manual lists 1-based register numbers 3204, 3208, 3220, 3224; the request
    # addresses are one less: 0x0C83, 0x0C87, 0x0C93, 0x0C97.
    def spec(register: int, unit: str) -> RegisterSpec:
        return RegisterSpec(READ_HOLDING_REGISTERS, register, RegisterType.INT64, unit, base=1)

    return RegisterMap(
        name="schneider-iem3000",
        registers={
            (Channel.A_PLUS, 0): spec(3204, "Wh"),  # Total Active Energy Import
            (Channel.A_MINUS, 0): spec(3208, "Wh"),  # Total Active Energy Export
            (Channel.R_PLUS, 0): spec(3220, "varh"),  # Total Reactive Energy Import
            (Channel.R_MINUS, 0): spec(3224, "varh"),  # Total Reactive Energy Export
        },
        notes="export and reactive registers are absent on iEM3150/3250/3350",
    )


def _carlo_gavazzi_em24() -> RegisterMap:
    # Carlo Gavazzi EM24-DIN: INT32 low word first (bytes high first in each
    # word), weight 0.1 kWh; the protocol document's "physical address" is the
    # 0-based protocol address (kWh (+) TOT 0042h, kWh (-) TOT 005Ch). FC 3 and
    # FC 4 return the same values; at most 11 registers per read (RS-485 models).
    def spec(address: int) -> RegisterSpec:
        return RegisterSpec(
            READ_HOLDING_REGISTERS,
            address,
            RegisterType.INT32,
            "kWh",
            word_order=Order.LITTLE,
            scale=Decimal("0.1"),
        )

    return RegisterMap(
        name="carlo-gavazzi-em24",
        registers={
            (Channel.A_PLUS, 0): spec(0x0042),  # kWh (+) TOT
            (Channel.A_MINUS, 0): spec(0x005C),  # kWh (-) TOT
        },
        max_registers=11,
        notes="reactive registers not mapped; a value of 0.1 kWh resolution is whole 100 Wh",
    )


PROFILES: Mapping[str, RegisterMap] = types.MappingProxyType(
    {
        "eastron-sdm630": _eastron("eastron-sdm630"),
        "eastron-sdm120": _eastron("eastron-sdm120"),
        "schneider-iem3000": _schneider_iem3000(),
        "carlo-gavazzi-em24": _carlo_gavazzi_em24(),
    }
)
"""Built-in register maps by name."""


def profile(name: str) -> RegisterMap:
    """The built-in register map `name`; `KeyError` names the known profiles."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"no register map {name!r}; known: {', '.join(sorted(PROFILES))}") from None
