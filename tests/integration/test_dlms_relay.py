"""The DLMS relay and instantaneous values against the DLMS simulator over real sockets and a pty.

The disconnect control 0.0.96.3.10.255 (class 70) is driven by `amr.drivers.dlms.relay` through
the configurator client (48, LLS); the simulated meter's load switch is the model's, so its energy
stops while it is disconnected.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel
from amr.drivers.dlms.driver import DlmsHdlcDriver, DlmsTcpDriver
from amr.drivers.quality import QualityReader
from amr.drivers.relay import RelayState, RelaySwitch
from amr.errors import DeviceError, ReadTimeout
from simulators.dlms import DlmsHdlcSimulator, DlmsWrapperSimulator
from simulators.dlms import operations as sim_operations
from simulators.dlms.server import DEFAULT_PASSWORDS
from simulators.model import Faults, VirtualMeter
from simulators.quality import instant

CONFIGURATOR = {"client": 48, "authentication": "lls", "password": DEFAULT_PASSWORDS[48]}


def virtual(serial: str, address: int = 17, faults: Faults | None = None) -> VirtualMeter:
    return VirtualMeter(serial, address=address, start=datetime.now(UTC) - timedelta(hours=2),
                        faults=faults or Faults())


def configured(serial: str, address: int = 17, **dlms: Any) -> MeterConfig:
    return MeterConfig.model_validate({"serial": serial, "address": address, "dlms": dlms})


def bus(kind: str, url: str, timeout: float = 2.0, **fields: Any) -> BusConfig:
    return BusConfig.model_validate({"name": "d", "kind": kind, "url": url, "timeout": timeout, "retries": 0,
                                     **fields})


def test_the_drivers_declare_the_capabilities() -> None:
    driver = DlmsTcpDriver(bus("dlms-tcp", "tcp://127.0.0.1:4059"))
    assert isinstance(driver, RelaySwitch) and isinstance(driver, QualityReader)


def test_disconnect_stops_the_energy_and_reconnect_resumes_it_state_read_back() -> None:
    meter = virtual("RL1")

    async def scenario() -> list[RelayState]:
        async with DlmsWrapperSimulator([meter]) as sim:
            driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("RL1")))
            config = configured("RL1", host=sim.url("RL1"), **CONFIGURATOR)
            states = [await driver.relay(config, "read"), await driver.relay(config, "disconnect")]
            stopped = meter.registers(datetime.now(UTC) + timedelta(hours=1))[0][Channel.A_PLUS]
            assert meter.registers(datetime.now(UTC) + timedelta(hours=3))[0][Channel.A_PLUS] == stopped
            states += [await driver.relay(config, "disconnect"), await driver.relay(config, "reconnect")]
            later = meter.registers(datetime.now(UTC) + timedelta(hours=5))[0][Channel.A_PLUS]
            assert later is not None and stopped is not None and later > stopped
            return states

    before = sim_operations.ACTIONS.get("RL1", 0)
    read, off, again, on = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert read == RelayState("connected", True, acted=False)
    assert off == RelayState("disconnected", False, acted=True)
    assert again == RelayState("disconnected", False, acted=False)  # already there: no second ACTION
    assert on == RelayState("connected", True, acted=True)
    assert sim_operations.ACTIONS["RL1"] - before == 2


def test_the_public_client_may_read_the_relay_but_not_switch_it() -> None:
    meter = virtual("RL2")

    async def scenario() -> None:
        async with DlmsWrapperSimulator([meter]) as sim:
            driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("RL2")))
            config = configured("RL2", host=sim.url("RL2"))
            assert (await driver.relay(config, "read")).state == "connected"
            with pytest.raises(DeviceError, match="read-write-denied") as caught:
                await driver.relay(config, "disconnect")
            assert caught.value.code == "dlms.access_denied" and caught.value.retryable is False

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert meter.relay == "connected"


def test_a_late_answer_times_out_but_the_relay_has_moved_and_the_next_session_does_not_act_again() -> None:
    meter = virtual("RL3", faults=Faults(relay_delay=1.5))

    async def scenario() -> RelayState:
        async with DlmsWrapperSimulator([meter]) as sim:
            driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("RL3"), timeout=0.5))
            config = configured("RL3", host=sim.url("RL3"), **CONFIGURATOR)
            with pytest.raises(ReadTimeout):
                await driver.relay(config, "disconnect")
            return await driver.relay(config, "disconnect")

    before = sim_operations.ACTIONS.get("RL3", 0)
    state = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert state == RelayState("disconnected", False, acted=False)
    assert sim_operations.ACTIONS["RL3"] - before == 1


def test_relay_on_an_hdlc_line_on_a_pty() -> None:
    meter = virtual("RL4", address=18)

    async def scenario() -> RelayState:
        async with DlmsHdlcSimulator([meter], transport="pty", baudrate=115200) as sim:
            driver = DlmsHdlcDriver(bus("dlms-hdlc", sim.url, baudrate=115200))
            await driver.open()
            try:
                return await driver.relay(configured("RL4", address=18, **CONFIGURATOR), "disconnect")
            finally:
                await driver.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == RelayState("disconnected", False, acted=True)
    assert meter.relay == "disconnected"


def test_instantaneous_values_match_the_model_within_the_registers_resolution() -> None:
    meter = virtual("Q1", faults=Faults(voltage=241.5))

    async def scenario() -> Any:
        async with DlmsWrapperSimulator([meter]) as sim:
            driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("Q1")))
            return await driver.read_quality(configured("Q1", host=sim.url("Q1")))

    sample = asyncio.run(asyncio.wait_for(scenario(), 30))
    truth = instant(meter, sample.measured_at)
    assert sample.errors == {}
    assert sample.values["voltage_l1"] == pytest.approx(241.5, abs=0.005)
    assert sample.values["voltage_l3"] == pytest.approx(241.5, abs=0.005)
    assert sample.values["frequency"] == pytest.approx(truth.frequency, abs=0.02)
    assert sample.values["power_factor_total"] == pytest.approx(truth.power_factor_total, abs=0.001)
    assert sample.values["power_total"] > 0
    assert sample.values["power_l1"] == pytest.approx(sample.values["power_total"] / 3, rel=0.2)
