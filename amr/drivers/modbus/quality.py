"""Modbus instantaneous values: the Eastron SDM630 / SDM120 input registers (`eastron_instant`).

A meter has them when its ``profile`` is ``eastron-sdm630`` or ``eastron-sdm120``; they are read
in one request (FC 4, 0x48 registers from 0x0000) on the meter's link, holding its lock like a poll.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from amr.config import MeterConfig
from amr.drivers.modbus.settings import ModbusMeterSettings
from amr.drivers.quality import QualitySample
from amr.errors import DeviceError, ProtocolError
from amr.protocols.modbus_map import eastron_instant
from amr.protocols.modbus_map.planning import ReadBlock

if TYPE_CHECKING:
    from amr.drivers.modbus.driver import _ModbusDriver

BLOCK = ReadBlock(eastron_instant.FUNCTION, eastron_instant.FIRST, eastron_instant.COUNT, ())


def quantities_of(meter: MeterConfig) -> tuple[str, ...]:
    """The instantaneous values the meter's profile has (none for other maps)."""
    profile = ModbusMeterSettings.of(meter).profile
    return eastron_instant.PROFILES.get(profile or "", ())


async def read(driver: _ModbusDriver, meter: MeterConfig) -> QualitySample:
    """One read of the meter's instantaneous values."""
    quantities = quantities_of(meter)
    if not quantities:
        raise DeviceError(f"meter {meter.serial}: no instantaneous values are known for its register map "
                          f"(profile eastron-sdm630 or eastron-sdm120 has them)")
    _regmap, _blocks, link, unit = driver._prepared(meter)
    timeout = (meter.timeout or driver.bus.timeout).total_seconds()
    measured_at = datetime.now(UTC)
    async with link.lock:
        registers = await link.read(BLOCK, unit, timeout)
    try:
        values = eastron_instant.decode(registers, quantities)
    except ValueError as exc:
        raise ProtocolError(f"meter {meter.serial}: {exc}") from None
    return QualitySample(meter.serial, measured_at, values)
