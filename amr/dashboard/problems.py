"""What a poll that answered only in part left out, in the terms a dispatcher reads.

A driver reports the reads that failed as ``{where: the device's answer}``. Where is the
driver's own name for the read: a Modbus block (``fc4:344+2``: function 4, protocol address 344,
two registers), an OBIS code, a tariff zone. For a Modbus block the meter's register map says
which channels and tariff zones the block carries, so the page can say "T1 A+" beside the
device's answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from amr.config import BusConfig, MeterConfig
from amr.errors import AmrError

_BLOCK = re.compile(r"^fc(\d+):(\d+)\+(\d+)$")
_TARIFF = re.compile(r"^tariff (\d+)$")


@dataclass(frozen=True, slots=True)
class MissingRead:
    """One read that failed: the driver's name for it, the channels it carries, the device's answer."""

    where: str
    channels: tuple[str, ...]
    answer: str


def _label(channel: str, tariff: int) -> str:
    name = {"a_plus": "A+", "a_minus": "A-", "r_plus": "R+", "r_minus": "R-"}.get(channel, channel)
    return name if tariff == 0 else f"T{tariff} {name}"


def _modbus_channels(meter: MeterConfig, bus: BusConfig, function: int, start: int, count: int) -> tuple[str, ...]:
    from amr.drivers.modbus.driver import register_map  # the map the driver reads by
    from amr.drivers.modbus.settings import ModbusBusSettings

    try:
        regmap = register_map(meter, ModbusBusSettings.of(bus).max_registers)
    except AmrError:
        return ()
    found = [
        _label(channel.value, tariff)
        for (channel, tariff), spec in regmap.registers.items()
        if spec.function == function and start <= spec.protocol_address < start + count
    ]
    return tuple(sorted(found))


def missing_reads(
    meter: MeterConfig | None, bus: BusConfig | None, errors: Mapping[str, str]
) -> list[MissingRead]:
    """The failed reads of a poll (`errors` as the driver reported them), with their channels where known."""
    found = []
    for where, answer in errors.items():
        channels: tuple[str, ...] = ()
        block = _BLOCK.match(where)
        tariff = _TARIFF.match(where)
        if block and meter is not None and bus is not None and bus.kind in ("modbus-tcp", "modbus-rtu"):
            function, start, count = (int(g) for g in block.groups())
            channels = _modbus_channels(meter, bus, function, start, count)
        elif tariff:
            channels = (f"T{tariff.group(1)}",)
        found.append(MissingRead(where, channels, answer))
    return found


__all__ = ["MissingRead", "missing_reads"]
