"""Mercury 230 auxiliary parameters (08 11) through the driver against the Mercury simulator on a pty and TCP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from amr.config import BusConfig, MeterConfig
from amr.drivers.mercury230.driver import Mercury230Driver
from amr.drivers.quality import QUANTITIES, QualitySample
from simulators.model import Faults, VirtualMeter
from simulators.quality import instant
from simulators.serial_line import Transport
from simulators.serial_meters import MercurySimulator

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_every_auxiliary_value_is_read_in_one_session(transport: Transport) -> None:
    virtual = VirtualMeter("01100021", address=21, start=NOW - timedelta(hours=6), faults=Faults(voltage=219.87))

    async def scenario() -> QualitySample:
        async with MercurySimulator([virtual], transport=transport, clock=lambda: NOW) as sim:
            bus = BusConfig.model_validate({"name": "line", "kind": "mercury230", "url": sim.url, "timeout": "500ms",
                                            "frame_pause": "5ms"})
            driver = Mercury230Driver(bus)
            await driver.open()
            try:
                return await driver.read_quality(MeterConfig(serial=virtual.serial, address=21))
            finally:
                await driver.close()

    sample = asyncio.run(asyncio.wait_for(scenario(), 30))
    truth = instant(virtual, NOW)
    assert sample.errors == {} and set(sample.values) == set(QUANTITIES)
    assert sample.values["voltage_l2"] == pytest.approx(219.87, abs=0.005)
    assert sample.values["current_l1"] == pytest.approx(truth.current[0], abs=0.0005)
    assert sample.values["power_total"] == pytest.approx(truth.power_total, abs=0.005)
    assert sample.values["power_factor_total"] == pytest.approx(truth.power_factor_total, abs=0.0005)
    assert sample.values["frequency"] == pytest.approx(truth.frequency, abs=0.005)
