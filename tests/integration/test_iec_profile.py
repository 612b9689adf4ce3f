"""The IEC 62056-21 driver reads the P.01 profile from the simulator in programming mode (real pty, TCP)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel
from amr.core.intervals import ProfileFlag, floor_interval
from amr.drivers.iec62056_21.driver import Iec62056Driver
from amr.drivers.iec62056_21.settings import IecMeterSettings
from amr.drivers.profiles import ProfileRecords
from amr.errors import ConfigError
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.serial_meters import IecSimulator, Transport

NOW = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
MSK = ZoneInfo("Europe/Moscow")


def fixed_clock() -> datetime:
    return NOW


async def read(transport: Transport, memory: ProfileMemory, config: MeterConfig, *span: Any) -> Any:
    meter = memory.meter
    async with IecSimulator([meter], transport=transport, clock=fixed_clock, line_speed=False,
                            profiles={meter.serial: memory}) as sim:  # fmt: skip
        bus = BusConfig.model_validate(
            {"name": "line", "kind": "iec62056-21", "url": sim.url, "timeout": "300ms", "frame_pause": "2ms"}
        )
        driver = Iec62056Driver(bus, tz=MSK)
        try:
            return await driver.read_profile(config, *span)
        finally:
            await driver.close()


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_p01_range_with_a_power_failure(transport: Transport) -> None:
    meter = VirtualMeter("IEC-7", address="7", start=NOW - timedelta(days=5))
    outage = (NOW - timedelta(hours=10, minutes=10), NOW - timedelta(hours=9, minutes=5))
    memory = ProfileMemory(meter, start=NOW - timedelta(days=5), outages=[outage])
    config = MeterConfig.model_validate(
        {"serial": meter.serial, "address": "7", "settings": IecMeterSettings(password="00000000")}
    )
    start, end = NOW - timedelta(hours=12), NOW
    records = asyncio.run(asyncio.wait_for(read(transport, memory, config, start, end), 30))
    held = [t for t in memory.times(NOW)[:-1] if start <= t < end]
    assert [r.start for r in records] == held
    assert len(held) == 24 - 1 - 2  # from 00:30: not the running 12:00, nor two periods without power
    back = next(r for r in records if r.start == floor_interval(outage[1]))
    assert back.flags == ProfileFlag.POWER_FAILURE
    first = records[0]
    pulses = memory.pulses(first.start, NOW)[Channel.A_PLUS]
    assert first.exact is not None and first.exact[Channel.A_PLUS] == Fraction(pulses or 0)  # 1 Wh a pulse, exact
    assert isinstance(records, ProfileRecords) and records.complete_until == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_p01_needs_the_password() -> None:
    meter = VirtualMeter("IEC-8", address="8", start=NOW - timedelta(days=1))
    config = MeterConfig(serial=meter.serial, address="8")
    with pytest.raises(ConfigError, match="programming mode: set the meter's password"):
        asyncio.run(read("pty", ProfileMemory(meter), config, NOW - timedelta(hours=1), NOW))
