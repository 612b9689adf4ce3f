"""Planning the reads of a meter's registers, and its register map.

`plan_reads` groups the registers of one meter into as few requests as
possible: same function code, contiguous or separated by at most `max_gap`
unused registers, at most `max_registers` per request (125 is the Modbus
limit for function codes 3 and 4; some meters accept fewer). Reading across a
gap costs two bytes per unused register, a new request costs a round trip;
but a meter may answer "illegal data address" for a range with holes in its
map, in which case set its `max_gap` to 0.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from amr.core.domain import Channel, Values
from amr.errors import ProtocolError
from amr.protocols.modbus_map.codec import DEFAULT_MAX_GAP, MAX_READ_REGISTERS, RegisterSpec, decode, encode
from amr.protocols.units import unit_fits_channel


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
