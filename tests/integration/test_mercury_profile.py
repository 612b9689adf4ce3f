"""The Mercury 230 driver reads the power profile from the simulator over a real pty and over TCP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from amr.config import BusConfig, Config, MeterConfig
from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalStatus, ProfileFlag, floor_interval
from amr.drivers.mercury230.driver import Mercury230Driver
from amr.drivers.mercury230.settings import MercuryMeterSettings
from amr.drivers.profiles import profile_reader, to_intervals
from amr.drivers.registry import spec
from amr.protocols import mercury230_profile as prof
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.serial_meters import MercurySimulator, Transport

NOW = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
HALF = timedelta(minutes=30)


def fixed_clock() -> datetime:
    return NOW


def bus(url: str) -> BusConfig:
    return BusConfig.model_validate(
        {"name": "line", "kind": "mercury230", "url": url, "timeout": "300ms", "frame_pause": "2ms"}
    )


async def read(
    transport: Transport, meter: VirtualMeter, memory: ProfileMemory, config: MeterConfig, *span: Any
) -> Any:
    async with MercurySimulator(
        [meter], transport=transport, clock=fixed_clock, line_speed=False, profiles={meter.serial: memory}
    ) as sim:
        driver = Mercury230Driver(bus(sim.url), tz=ZoneInfo(meter.timezone))  # the meter keeps local time
        await driver.open()
        try:
            return await driver.read_profile(config, *span)
        finally:
            await driver.close()


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_a_day_with_an_outage_is_read_as_the_memory_holds_it(transport: Transport) -> None:
    meter = VirtualMeter("41000017", address=17, start=NOW - timedelta(days=90))
    outage = (NOW - timedelta(hours=20, minutes=10), NOW - timedelta(hours=18, minutes=20))
    memory = ProfileMemory(meter, start=NOW - timedelta(days=90), outages=[outage])
    config = MeterConfig(serial=meter.serial, address=17)
    start, end = NOW - timedelta(days=1), NOW
    records = asyncio.run(asyncio.wait_for(read(transport, meter, memory, config, start, end), 30))
    held = [t for t in memory.times(NOW)[:-1] if start <= t < end]
    assert [r.start for r in records] == held
    assert len(held) == 48 - 1 - 3  # from 12:30 yesterday, the running 12:00 left out, 3 periods without power
    back = next(r for r in records if r.start == floor_interval(outage[1]))
    assert back.flags == ProfileFlag.PARTIAL and back.status == IntervalStatus.INCOMPLETE
    first = records[0]
    pulses = memory.pulses(first.start, NOW)[Channel.A_PLUS]
    assert pulses is not None
    assert first.exact is not None and first.exact[Channel.A_PLUS] == Fraction(pulses * 500, 500)  # constant 500


def test_primary_side_is_exact_with_the_ratio() -> None:
    meter = VirtualMeter("41000018", address=18, start=NOW - timedelta(days=2))
    memory = ProfileMemory(meter, start=NOW - timedelta(days=2), constant=5000)
    config = MeterConfig.model_validate(
        {"serial": meter.serial, "address": 18, "ct_ratio": 40, "settings": MercuryMeterSettings(constant=5000)}
    )
    start = NOW - timedelta(hours=3)
    records = asyncio.run(asyncio.wait_for(read("pty", meter, memory, config, start, NOW), 30))
    assert len(records) == 5
    (known,) = Config(meters=[config]).meter_objects()
    values = to_intervals(meter.serial, records, known, NOW)
    a_plus = [v for v in values if v.channel is Channel.A_PLUS]
    for value, record in zip(a_plus, records, strict=True):
        pulses = memory.pulses(record.start, NOW)[Channel.A_PLUS]
        assert pulses is not None
        assert value.wh == round(Fraction(pulses, 10) * 40)  # 0.1 Wh a pulse × CT 40, rounded once
        assert value.source is IntervalSource.PROFILE


def test_the_spec_lists_profiles_and_the_depth_is_the_models() -> None:
    assert "profiles" in spec("mercury230").capabilities
    driver = Mercury230Driver(bus("/dev/null"))
    assert profile_reader(driver) is driver
    assert driver.memory_depth(MeterConfig(serial="1", address=1)) == prof.RECORDS * HALF
    deep = MeterConfig.model_validate(
        {"serial": "1", "address": 1, "settings": MercuryMeterSettings(profile_depth="30d")}
    )
    assert driver.memory_depth(deep) == timedelta(days=30)


def test_every_protocol_listing_profiles_reads_them() -> None:
    from amr.drivers.profiles import ProfileReader
    from amr.drivers.registry import PROTOCOLS

    for kind, known in PROTOCOLS.items():
        assert ("profiles" in known.capabilities) == issubclass(known.driver_class(), ProfileReader), kind


def test_a_swapped_meter_profile_is_not_read() -> None:
    from amr.drivers.mercury230.driver import MeterMismatch

    meter = VirtualMeter("41000017", address=17, start=NOW - timedelta(days=1))
    memory = ProfileMemory(meter, start=NOW - timedelta(days=1))
    config = MeterConfig(serial="41000099", address=17)  # the configuration expects another meter there
    with pytest.raises(MeterMismatch, match="reports serial 41000017"):
        asyncio.run(asyncio.wait_for(read("pty", meter, memory, config, NOW - timedelta(hours=2), NOW), 30))
