"""The Modbus TCP driver against pymodbus's own server and datastore (not our simulator).

The registers are built here from the meters' documented formats with `struct`,
independently of `amr.protocols.modbus_map.encode`, so a decoding mistake in the
driver cannot be cancelled out by the same mistake in an encoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from datetime import UTC
from typing import Any, TypeVar

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from amr.config import BusConfig, MeterConfig, config_from_dict
from amr.core.domain import Channel
from amr.drivers.base import MeterValues
from amr.drivers.modbus.driver import ModbusTcpDriver, register_map
from amr.errors import ConnectError, DeviceError, ReadTimeout

T = TypeVar("T")
TIMEOUT = 0.3
Requests = list[tuple[int, int, int, int]]  # unit, function, address, count


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def float32(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))  # big-endian words and bytes


def int64(value: int) -> list[int]:
    return list(struct.unpack(">4H", value.to_bytes(8, "big", signed=True)))


def int32_low_word_first(value: int) -> list[int]:
    high, low = struct.unpack(">HH", value.to_bytes(4, "big", signed=True))
    return [low, high]


def device(unit: int, requests: Requests, *, holding: dict[int, list[int]] | None = None,
           inputs: dict[int, list[int]] | None = None, sleep: float = 0.0) -> SimDevice:
    """A pymodbus device with separate holding and input registers; unlisted addresses are invalid."""

    async def action(function: int, _start: int, address: int, count: int, _regs: list[int],
                     _values: list[int] | list[bool] | None) -> None:
        requests.append((unit, function, address, count))
        await asyncio.sleep(sleep)

    def block(registers: dict[int, list[int]] | None) -> list[SimData]:
        if not registers:
            return [SimData(0xFF00, datatype=DataType.INVALID)]
        return [SimData(a, values=v, datatype=DataType.REGISTERS) for a, v in sorted(registers.items())]

    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    return SimDevice(unit, simdata=(bits, list(bits), block(holding), block(inputs)), action=action)


SDM630 = {0x48: float32(12345.67), 0x4A: float32(0.5), 0x4C: float32(2345.25), 0x4E: float32(10.0)}
IEM3000 = {  # 1-based registers 3204.. are protocol addresses 0x0C83..; the gap is other registers
    0x0C83: int64(123_456_789_012), 0x0C87: int64(0), 0x0C8B: [0] * 8,
    0x0C93: int64(98_765), 0x0C97: int64(1),
}
IEM3150 = {0x0C83: int64(4_321_000), 0x0C8B: [0] * 8}  # no export, no reactive: those addresses are invalid
EM24 = {0x42: int32_low_word_first(1_234_567), 0x5C: int32_low_word_first(89)}


@asynccontextmanager
async def pymodbus_server(requests: Requests) -> AsyncIterator[str]:
    devices = [
        device(1, requests, inputs=SDM630),
        device(2, requests, holding=IEM3000),
        device(3, requests, holding=EM24),
        device(4, requests, inputs=SDM630, sleep=2.0),  # answers long after the timeout
        device(5, requests, holding=IEM3150),
    ]
    server = ModbusTcpServer(devices, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    try:
        listener: Any = server.transport  # an asyncio.Server
        yield f"tcp://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def bus(url: str, **fields: Any) -> BusConfig:
    return BusConfig.model_validate({"name": "tcp", "kind": "modbus-tcp", "url": url, "timeout": TIMEOUT, **fields})


def meter(serial: str, address: int, **fields: Any) -> MeterConfig:
    return MeterConfig.model_validate({"serial": serial, "bus": "tcp", "address": address, **fields})


EM24_REGISTERS = [  # the EM24 map written out in a config instead of the built-in profile
    {"channel": channel, "function": 3, "address": address, "type": "int32",
     "word_order": "little", "scale": "0.1", "unit": "kWh"}
    for channel, address in (("a_plus", 0x42), ("a_minus", 0x5C))
]


async def read_all(*meters: MeterConfig) -> tuple[list[MeterValues], Requests]:
    requests: Requests = []
    async with pymodbus_server(requests) as url:
        driver = ModbusTcpDriver(bus(url))
        await driver.open()
        try:
            return [await driver.read(m) for m in meters], requests
        finally:
            await driver.close()


def test_profiles_and_a_custom_map_decode_exactly_in_the_fewest_requests() -> None:
    values, requests = run(read_all(
        meter("SDM", 1, profile="eastron-sdm630"),
        meter("IEM", 2, profile="schneider-iem3000"),
        meter("EM24", 3, registers=EM24_REGISTERS),
    ))
    sdm, iem, em24 = values
    assert sdm.tariffs == {0: {Channel.A_PLUS: 12_345_670, Channel.A_MINUS: 500,
                               Channel.R_PLUS: 2_345_250, Channel.R_MINUS: 10_000}}
    assert iem.tariffs == {0: {Channel.A_PLUS: 123_456_789_012, Channel.A_MINUS: 0,
                               Channel.R_PLUS: 98_765, Channel.R_MINUS: 1}}
    assert em24.tariffs == {0: {Channel.A_PLUS: 123_456_700, Channel.A_MINUS: 8_900}}
    assert (sdm.errors, iem.errors, em24.errors) == ({}, {}, {})
    assert (sdm.serial, sdm.polled_at.tzinfo) == ("SDM", UTC)
    assert requests == [(1, 4, 0x48, 8), (2, 3, 0x0C83, 24), (3, 3, 0x42, 2), (3, 3, 0x5C, 2)]


def test_the_bus_limit_on_registers_per_request_splits_reads() -> None:
    async def scenario() -> tuple[MeterValues, Requests]:
        requests: Requests = []
        async with pymodbus_server(requests) as url:
            driver = ModbusTcpDriver(bus(url, max_registers=4))
            try:
                return await driver.read(meter("SDM", 1, profile="eastron-sdm630")), requests
            finally:
                await driver.close()

    values, requests = run(scenario())
    assert values.tariffs[0][Channel.R_MINUS] == 10_000
    assert requests == [(1, 4, 0x48, 4), (1, 4, 0x4C, 4)]


def test_exception_response_is_a_device_error_naming_the_code() -> None:
    with pytest.raises(DeviceError, match=r"illegal data address \(2\)"):
        run(read_all(meter("IEM", 2, profile="eastron-sdm630")))  # no input registers there


def test_a_failed_block_keeps_the_values_of_the_others() -> None:
    broken = [*EM24_REGISTERS, {"channel": "r_plus", "function": 3, "address": 0x300,
                                "type": "uint32", "unit": "varh"}]
    (values,), _ = run(read_all(meter("EM24", 3, registers=broken)))
    assert values.tariffs == {0: {Channel.A_PLUS: 123_456_700, Channel.A_MINUS: 8_900}}
    assert list(values.errors) == ["fc3:768+2"]
    assert "illegal data address (2)" in values.errors["fc3:768+2"]


def test_no_answer_is_a_read_timeout_within_the_timeout() -> None:
    async def scenario() -> float:
        async with pymodbus_server([]) as url:
            driver = ModbusTcpDriver(bus(url))
            try:
                start = time.monotonic()
                with pytest.raises(ReadTimeout, match="no answer from unit 4"):
                    await driver.read(meter("SLOW", 4, profile="eastron-sdm630"))
                elapsed = time.monotonic() - start
                healthy = await driver.read(meter("SDM", 1, profile="eastron-sdm630"))
                assert healthy.tariffs[0][Channel.A_PLUS] == 12_345_670
                return elapsed
            finally:
                await driver.close()

    assert TIMEOUT <= run(scenario()) < TIMEOUT + 1.0  # the deadline, not pymodbus's own timer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_connection_refused_is_a_connect_error() -> None:
    async def scenario() -> None:
        driver = ModbusTcpDriver(bus(f"tcp://127.0.0.1:{free_port()}"))
        with pytest.raises(ConnectError, match=r"cannot open tcp://127\.0\.0\.1"):
            await driver.open()
        with pytest.raises(ConnectError):
            await driver.read(meter("SDM", 1, profile="eastron-sdm630"))
        await driver.close()

    run(scenario())


@contextlib.contextmanager
def threaded_peer(registers: list[int]) -> Iterator[str]:
    """A Modbus TCP peer on its own thread (answers at once, whatever the event loop does): fc 4 → `registers`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as conn:
            while request := conn.recv(12):
                # MBAP: transaction id, protocol id, length, unit; PDU: function, address, count
                tid, _, _, unit, function, _, count = struct.unpack(">HHHBBHH", request)
                body = struct.pack(f">BB{count}H", function, 2 * count, *registers[:count])
                conn.sendall(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(5)


def test_an_answer_that_came_in_time_counts_when_the_event_loop_was_late() -> None:
    # The peer answers at once; the collector's event loop is then held up past the timeout (a burst
    # of work, a GC pause). When it runs again, the answer waits in the socket and the deadline is due
    # in the same turn: the answer must win, not turn into a timeout or a "no valid frame".
    registers = [word for address in sorted(SDM630) for word in SDM630[address]]

    async def scenario() -> MeterValues:
        with threaded_peer(registers) as url:
            driver = ModbusTcpDriver(bus(url, timeout=0.2))
            try:
                await driver.open()
                asyncio.get_running_loop().call_soon(time.sleep, 0.5)  # runs once the request is sent
                return await driver.read(meter("SDM", 1, profile="eastron-sdm630"))
            finally:
                await driver.close()

    values = run(scenario())
    assert values.tariffs[0][Channel.A_PLUS] == 12_345_670 and values.errors == {}


def test_a_meter_lacking_registers_of_its_profile_keeps_what_it_has_and_is_asked_only_for_that() -> None:
    """An iEM3150 (no export, no reactive) on the iEM3000 profile: exception 2 for the planned block."""

    async def scenario() -> tuple[list[MeterValues], Requests]:
        requests: Requests = []
        async with pymodbus_server(requests) as url:
            driver = ModbusTcpDriver(bus(url))
            await driver.open()
            try:
                return [await driver.read(meter("IEM3150", 5, profile="schneider-iem3000")) for _ in range(2)], requests
            finally:
                await driver.close()

    (first, second), requests = run(scenario())
    assert first.tariffs == second.tariffs == {0: {Channel.A_PLUS: 4_321_000}}
    assert first.errors.keys() == {"fc3:3207+4", "fc3:3219+4", "fc3:3223+4"}
    assert all("illegal data address (2)" in text for text in first.errors.values())
    assert second.errors == {} and second.raw["absent"] == ["fc3:3207+4", "fc3:3219+4", "fc3:3223+4"]
    # pymodbus calls the device's action only for reads it answers: A+ alone, once a poll
    assert requests == [(5, 3, 0x0C83, 4), (5, 3, 0x0C83, 4)]
    assert second.raw["requests"] == 1  # the next poll asks only for what exists


def test_max_gap_is_a_meter_setting() -> None:
    config = config_from_dict({"meters": [{"serial": "X", "max_gap": 0, "profile": "schneider-iem3000"}]}, environ={})
    (only,) = config.meters
    assert only.settings.max_gap == 0  # type: ignore[attr-defined]
    assert [b.count for b in register_map(only, 125).plan()] == [8, 8]  # no read across the unused gap
