"""Eastron SDM630 / SDM120 instantaneous values through the Modbus drivers, against the simulators
(TCP on loopback, RTU on a pty) and through the collector into the store, with limit events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from amr.app import App
from amr.collector.collector import Collector
from amr.collector.operations import Operations
from amr.config import BusConfig, DatabaseConfig, MeterConfig, config_from_dict
from amr.drivers.modbus.driver import ModbusRtuDriver, ModbusTcpDriver
from amr.drivers.quality import QualitySample
from amr.errors import DeviceError
from amr.store import Store
from amr.store import quality as quality_store
from amr.store.models import meters_table
from simulators.modbus import ModbusRtuSimulator, ModbusTcpSimulator
from simulators.model import Faults, VirtualMeter
from simulators.quality import instant


def virtual(serial: str, address: int, **fields: Any) -> VirtualMeter:
    return VirtualMeter(serial, address=address, start=datetime.now(UTC) - timedelta(hours=1), **fields)


def meter(serial: str, address: int, profile: str = "eastron-sdm630") -> MeterConfig:
    return MeterConfig.model_validate({"serial": serial, "address": address, "profile": profile})


def test_sdm630_and_sdm120_values_over_tcp_match_the_meter_and_other_maps_have_none() -> None:
    three, single = virtual("E1", 1, faults=Faults(voltage=228.0)), virtual("E2", 2)

    async def scenario() -> tuple[QualitySample, QualitySample]:
        async with ModbusTcpSimulator([three, single], profiles={"E2": "eastron-sdm120"}) as sim:
            driver = ModbusTcpDriver(BusConfig.model_validate({"name": "m", "kind": "modbus-tcp", "url": sim.url}))
            try:
                iem = meter("X", 3, "schneider-iem3000")
                assert not driver.has_quality(iem) and driver.has_quality(meter("E1", 1))
                with pytest.raises(DeviceError, match="no instantaneous values"):
                    await driver.read_quality(iem)
                return (await driver.read_quality(meter("E1", 1)),
                        await driver.read_quality(meter("E2", 2, "eastron-sdm120")))
            finally:
                await driver.close()

    got, one_phase = asyncio.run(asyncio.wait_for(scenario(), 30))
    truth = instant(three, got.measured_at)
    assert got.values["voltage_l2"] == pytest.approx(228.0)
    assert got.values["power_factor_total"] == pytest.approx(truth.power_factor_total, abs=1e-6)  # magnitude
    assert got.values["power_total"] == pytest.approx(sum(got.values[f"power_l{n}"] for n in (1, 2, 3)), rel=1e-5)
    assert got.values["frequency"] == pytest.approx(truth.frequency, abs=0.01)
    assert set(one_phase.values) == {"voltage_l1", "current_l1", "power_l1", "power_factor_l1", "frequency"}


def test_sdm630_values_on_an_rtu_line_on_a_pty() -> None:
    device = virtual("E3", 7)

    async def scenario() -> QualitySample:
        async with ModbusRtuSimulator([device], transport="pty", baudrate=19200) as sim:
            bus = BusConfig.model_validate({"name": "r", "kind": "modbus-rtu", "url": sim.url, "baudrate": 19200})
            driver = ModbusRtuDriver(bus)
            try:
                return await driver.read_quality(meter("E3", 7))
            finally:
                await driver.close()

    got = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert 225 < got.values["voltage_l1"] < 235 and got.values["current_l1"] > 0


def test_the_collector_stores_samples_apart_and_an_event_per_quantity_outside_its_limit(tmp_path: Path) -> None:
    sagging = virtual("E4", 4, faults=Faults(voltage=198.5))

    async def scenario() -> dict[str, list[quality_store.QualityEvent]]:
        async with ModbusTcpSimulator([sagging]) as sim:
            config = config_from_dict({
                "database": {"url": f"sqlite:///{tmp_path / 'q.sqlite'}"},
                "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                "quality": {"every": "1h", "limits": {"voltage": {"min": 207, "max": 253},
                                                      "power_factor": {"min": 0.99}}},
                "buses": [{"name": "m", "kind": "modbus-tcp", "url": sim.url}],
                "meters": [{"serial": "E4", "bus": "m", "address": 4, "profile": "eastron-sdm630"}],
            }, environ={})
            app = await asyncio.to_thread(App.open, config)
            collector = Collector(app)
            await collector.start(schedule=False, push=False)
            try:
                ops = Operations(collector)
                first = await ops.quality_turn()
                await ops.quality_turn()
                return first
            finally:
                await collector.stop()
                app.close()

    events = asyncio.run(asyncio.wait_for(scenario(), 30))["E4"]
    assert {(e.quantity, e.kind, e.threshold) for e in events} == {
        ("voltage_l1", "below", 207.0), ("voltage_l2", "below", 207.0), ("voltage_l3", "below", 207.0),
        ("power_factor_l1", "below", 0.99), ("power_factor_l2", "below", 0.99), ("power_factor_l3", "below", 0.99),
        ("power_factor_total", "below", 0.99)}
    store = Store.open(DatabaseConfig(url=f"sqlite:///{tmp_path / 'q.sqlite'}"), "Europe/Moscow")
    try:
        with store.engine.connect() as conn:
            meter_id = conn.execute(select(meters_table.c.id).where(meters_table.c.serial == "E4")).scalar_one()
        span = (datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1))
        rows = quality_store.samples(store, meter_id, *span)
        stored = quality_store.events(store, meter_id, *span)
        assert len(rows) == 2 and rows[0]["voltage_l1"] == pytest.approx(198.5)
        assert len(stored) == 14  # seven a sample
        assert store.readings([meter_id]) == []  # instantaneous values are never readings
    finally:
        store.close()
