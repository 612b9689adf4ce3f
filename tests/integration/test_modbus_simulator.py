"""The Modbus drivers against our simulator over real transports: TCP, RTU on a pty, RTU over TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from amr.collector.retry import is_transient
from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel, Values
from amr.drivers.base import PollDriver
from amr.drivers.modbus.driver import ModbusRtuDriver, ModbusTcpDriver
from amr.errors import ConnectError, DeviceError, DriverError, ProtocolError, ReadTimeout
from amr.protocols.modbus_map import PROFILES, decode, encode
from simulators.modbus import ModbusRtuSimulator, ModbusTcpSimulator, rtu_line_time, tcp_simulators
from simulators.model import Faults, VirtualMeter

T = TypeVar("T")
TIMEOUT = 0.25
TRANSPORTS = ["tcp", "rtu-pty", "rtu-tcp"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def shown(meter: VirtualMeter, profile: str) -> dict[int, Values]:
    """What a driver should decode now: the model's registers through the map's resolution."""
    registers = meter.registers()
    result: dict[int, Values] = {}
    for (channel, tariff), spec in PROFILES[profile].registers.items():
        wh = registers[tariff][channel]
        assert wh is not None
        result.setdefault(tariff, {})[channel] = decode(spec, encode(spec, wh))
    return result


Simulator = ModbusTcpSimulator | ModbusRtuSimulator


@asynccontextmanager
async def bus_with(transport: str, meters: list[VirtualMeter], baudrate: int = 115200,
                   **sim_args: Any) -> AsyncIterator[tuple[PollDriver, Simulator]]:
    """A simulator on `transport` and an opened driver on it; both closed afterwards."""
    sim: Simulator
    if transport == "tcp":
        sim = ModbusTcpSimulator(meters, **sim_args)
    else:
        sim = ModbusRtuSimulator(meters, transport=transport.removeprefix("rtu-"),  # type: ignore[arg-type]
                                 baudrate=baudrate, **sim_args)
    async with sim:
        line = {"kind": "modbus-tcp"} if transport == "tcp" else {"kind": "modbus-rtu", "baudrate": baudrate}
        bus = BusConfig.model_validate({"name": "bus", "url": sim.url, "timeout": TIMEOUT, **line})
        driver: PollDriver = ModbusTcpDriver(bus) if transport == "tcp" else ModbusRtuDriver(bus)
        await driver.open()
        try:
            yield driver, sim
        finally:
            await driver.close()


def meter_config(meter: VirtualMeter, profile: str | None = "eastron-sdm630", **fields: Any) -> MeterConfig:
    return MeterConfig.model_validate(
        {"serial": meter.serial, "bus": "bus", "address": meter.address, "profile": profile, **fields})


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_several_meters_on_one_port_or_line_by_unit_id(transport: str) -> None:
    meters = [VirtualMeter("SDM-1", address=1), VirtualMeter("IEM-2", address=2),
              VirtualMeter("EM24-7", address=7, digits=7, decimals=1)]
    profiles = {"SDM-1": "eastron-sdm630", "IEM-2": "schneider-iem3000", "EM24-7": "carlo-gavazzi-em24"}

    async def scenario() -> list[int]:
        async with bus_with(transport, meters, profiles=profiles) as (driver, sim):
            for meter in meters:
                before = shown(meter, profiles[meter.serial])
                values = await driver.read(meter_config(meter, profiles[meter.serial]))
                assert values.tariffs in (before, shown(meter, profiles[meter.serial]))
                assert (values.errors, values.raw["unit"]) == ({}, meter.address)
            return [unit for unit, *_ in sim.requests]

    assert run(scenario()) == [1, 2, 7, 7]  # EM24's two registers lie too far apart for one read


def test_lower_by_wh_comes_through_the_model() -> None:
    honest = VirtualMeter("HONEST", address=1, seed=7, base_kw=0.0)
    lying = VirtualMeter("LYING", address=2, seed=7, base_kw=0.0, faults=Faults(lower_by_wh=5000))

    async def scenario() -> tuple[int | None, int | None]:
        async with bus_with("tcp", [honest, lying]) as (driver, _):
            first = await driver.read(meter_config(honest))
            second = await driver.read(meter_config(lying))
            return first.tariffs[0][Channel.A_PLUS], second.tariffs[0][Channel.A_PLUS]

    truth, lowered = run(scenario())
    assert truth is not None
    assert lowered == truth - 5000


def test_meters_on_several_ports_are_read_concurrently() -> None:
    groups = [[VirtualMeter(f"M{p}-{u}", address=u) for u in (1, 2)] for p in range(3)]

    async def scenario() -> None:
        async with tcp_simulators(groups) as sims:
            bus = BusConfig.model_validate(
                {"name": "bus", "kind": "modbus-tcp", "url": sims[0].url, "timeout": TIMEOUT})
            driver = ModbusTcpDriver(bus)
            configs = [
                meter_config(m, address=f"127.0.0.1:{sim.port}/{m.address}")
                for sim, group in zip(sims, groups, strict=True) for m in group
            ]
            try:
                results = await asyncio.gather(*(driver.read(c) for c in configs))
            finally:
                await driver.close()
            assert [r.serial for r in results] == [c.serial for c in configs]
            assert all(len(sim.requests) == 2 for sim in sims)

    run(scenario())


FAULTS: dict[str, tuple[Faults, dict[str, type[DriverError]], str]] = {
    "silent": (Faults(silent=True), dict.fromkeys(TRANSPORTS, ReadTimeout), "no answer"),
    "corrupt": (Faults(corrupt=1.0), dict.fromkeys(TRANSPORTS, ProtocolError), "CRC|MBAP"),
    "exception": (Faults(exception=4), dict.fromkeys(TRANSPORTS, DeviceError),
                  r"server device failure \(4\)"),
    # TCP and RTU-over-TCP close the connection; on a pty the answer is lost
    "drop": (Faults(drop=1.0), {"tcp": ConnectError, "rtu-pty": ReadTimeout, "rtu-tcp": ConnectError},
             "connection lost|no answer"),
    "delay": (Faults(delay=0.4), dict.fromkeys(TRANSPORTS, ReadTimeout), "no answer"),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_gives_its_error_and_the_next_meter_still_reads(fault: str, transport: str) -> None:
    faults, errors, message = FAULTS[fault]
    faulty = VirtualMeter("FAULTY", address=3, faults=faults)
    healthy = VirtualMeter("HEALTHY", address=4)

    async def scenario() -> float:
        async with bus_with(transport, [faulty, healthy]) as (driver, _):
            start = time.monotonic()
            with pytest.raises(errors[transport], match=message):
                await driver.read(meter_config(faulty))
            elapsed = time.monotonic() - start
            if fault == "delay":  # the line (or the device's connection) is busy until the late answer
                await asyncio.sleep(faults.delay - TIMEOUT + 0.3)
            values = await driver.read(meter_config(healthy))
            assert values.errors == {}
            assert values.tariffs[0][Channel.A_PLUS] is not None
            return elapsed

    elapsed = run(scenario())
    if errors[transport] is ReadTimeout:
        assert TIMEOUT <= elapsed < TIMEOUT + 1.0  # the deadline, not pymodbus's own timer
    else:
        assert elapsed < TIMEOUT  # garbled, refused and lost connections are told at once


def test_line_speed_of_a_20_register_read_at_9600_baud_on_a_pty() -> None:
    meter = VirtualMeter("SDM-9600", address=1)
    wide = [  # A+ at 0x48 ... R- at 0x5A: one read of 20 input registers
        {"channel": channel, "function": 4, "address": address, "type": "float32",
         "unit": unit, "decimals": 2}
        for channel, address, unit in (("a_plus", 0x48, "kWh"), ("a_minus", 0x50, "kWh"),
                                       ("r_plus", 0x56, "kvarh"), ("r_minus", 0x5A, "kvarh"))
    ]
    line_time = rtu_line_time(8, 5 + 2 * 20, 9600)  # request 8 bytes; answer unit, fc, count, 40, CRC

    async def scenario() -> float:
        async with bus_with("rtu-pty", [meter], baudrate=9600) as (driver, sim):
            before = shown(meter, "eastron-sdm630")[0][Channel.A_PLUS]
            start = time.monotonic()
            values = await driver.read(meter_config(meter, None, registers=wide))
            elapsed = time.monotonic() - start
            assert sim.requests == [(1, 4, 0x48, 20)]
            after = shown(meter, "eastron-sdm630")[0][Channel.A_PLUS]
            assert values.tariffs[0][Channel.A_PLUS] in (before, after)
            return elapsed

    assert 0.068 < line_time < 0.070  # the 69 ms of DOMAIN.md
    assert line_time - 0.002 <= run(scenario()) < line_time + 0.1


@pytest.mark.parametrize(
    ("exception", "code", "retryable"),
    [(6, "modbus.busy", True), (11, "modbus.gateway_target", True), (2, "modbus.illegal_address", False),
     (4, "modbus.device_failure", False)],
)
def test_an_exception_response_decoded_by_the_driver_says_whether_to_retry(
    exception: int, code: str, retryable: bool
) -> None:
    faulty = VirtualMeter("FAULTY", address=3, faults=Faults(exception=exception))

    async def scenario() -> DriverError:
        async with bus_with("tcp", [faulty]) as (driver, _):
            with pytest.raises(DeviceError) as caught:
                await driver.read(meter_config(faulty))
            return caught.value

    error = run(scenario())
    assert (error.code, error.retryable, is_transient(error)) == (code, retryable, retryable)
