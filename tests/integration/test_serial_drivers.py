"""The Mercury 230 and IEC 62056-21 drivers against the simulators, over a real pty and over TCP (socket://).

Every simulator reads its meters at the fixed moment NOW, so the values a
driver reports must equal `VirtualMeter.registers(NOW)` exactly.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from amr.collector.retry import is_transient
from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel, Values
from amr.drivers.base import MeterValues, PollDriver
from amr.drivers.iec62056_21.driver import Iec62056Driver
from amr.drivers.mercury230.driver import AnswerWaiter, Mercury230Driver, MeterMismatch, meter_address, meter_password
from amr.drivers.serial_line import LineSettings, SerialLine, frame_time
from amr.errors import ConfigError, ConnectError, DeviceError, DriverError, ProtocolError, ReadTimeout
from amr.protocols import iec62056_21 as iec
from amr.protocols import mercury230 as merc
from simulators.model import Faults, VirtualMeter
from simulators.serial_meters import IecSimulator, MercurySimulator, Transport

T = TypeVar("T")
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
MSK = ZoneInfo("Europe/Moscow")
TIMEOUT = timedelta(milliseconds=300)
TRANSPORTS: list[Transport] = ["pty", "tcp"]


def fixed_clock() -> datetime:
    return NOW


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def meter(serial: str, address: int | str, faults: Faults | None = None, **fields: Any) -> VirtualMeter:
    return VirtualMeter(serial, address=address, start=NOW - timedelta(hours=6), faults=faults or Faults(), **fields)


def config(virtual: VirtualMeter, **fields: Any) -> MeterConfig:
    return MeterConfig(serial=virtual.serial, address=virtual.address, tariffs=virtual.tariffs, **fields)


def bus(kind: str, url: str, **fields: Any) -> BusConfig:
    return BusConfig.model_validate(
        {"name": "line", "kind": kind, "url": url, "timeout": TIMEOUT, "frame_pause": "5ms", **fields}
    )


async def poll(driver: PollDriver, *meters: MeterConfig) -> list[MeterValues | DriverError]:
    """Read the meters one after another on one open driver; an error is returned in place of values."""
    results: list[MeterValues | DriverError] = []
    await driver.open()
    try:
        for item in meters:
            try:
                results.append(await driver.read(item))
            except DriverError as exc:
                results.append(exc)
    finally:
        await driver.close()
    return results


def values(result: MeterValues | DriverError) -> MeterValues:
    assert isinstance(result, MeterValues), result
    return result


# --- Mercury 230 ------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mercury_reads_every_meter_on_one_line(transport: Transport) -> None:
    meters = [
        meter("01100017", 17, tariffs=2),
        meter("01100018", 18, tariffs=1, solar_kw=4.0),
        meter("01100240", 240, Faults(wrap_after=timedelta(minutes=30), lower_by_wh=2000), tariffs=3),
    ]

    async def scenario() -> None:
        async with MercurySimulator(meters, transport=transport, clock=fixed_clock) as sim:
            results = await poll(Mercury230Driver(bus("mercury230", sim.url)), *map(config, meters))
        for virtual, result in zip(meters, results, strict=True):
            assert values(result).tariffs == virtual.registers(NOW)
            assert values(result).errors == {}
        wrapped = values(results[2]).tariffs[0][Channel.A_PLUS]
        assert wrapped is not None
        assert wrapped < 10_000  # A+ went through zero a few hours ago

    run(scenario())


MERCURY_FAULTS = [
    ("pty", Faults(silent=True), {}, ReadTimeout, "no answer"),
    ("tcp", Faults(silent=True), {}, ReadTimeout, "no answer"),
    ("pty", Faults(corrupt=1.0), {}, ProtocolError, "CRC mismatch"),
    ("tcp", Faults(corrupt=1.0), {}, ProtocolError, "CRC mismatch"),
    ("pty", Faults(drop=1.0), {}, ReadTimeout, "cut short"),
    ("tcp", Faults(drop=1.0), {}, ConnectError, "disconnected"),
    ("pty", Faults(delay=0.6), {}, ReadTimeout, "no answer"),
    ("tcp", Faults(), {"password": "123456"}, DeviceError, "access denied"),
    ("pty", Faults(), {"password": "123456"}, DeviceError, "access denied"),
]


@pytest.mark.parametrize(("transport", "faults", "fields", "error", "match"), MERCURY_FAULTS)
def test_mercury_fault_is_reported_and_the_next_meter_reads_fine(
    transport: Transport, faults: Faults, fields: dict[str, str], error: type[DriverError], match: str
) -> None:
    faulty, healthy = meter("F", 10, faults, tariffs=2), meter("H", 11, tariffs=2)

    async def scenario() -> None:
        async with MercurySimulator([faulty, healthy], transport=transport, clock=fixed_clock) as sim:
            bad, good = await poll(
                Mercury230Driver(bus("mercury230", sim.url)), config(faulty, **fields), config(healthy)
            )
        assert isinstance(bad, error), bad
        assert match in str(bad)
        assert values(good).tariffs == healthy.registers(NOW)

    run(scenario())


def test_mercury_late_answer_within_the_timeout_is_read() -> None:
    late = meter("L", 3, Faults(delay=0.15))

    async def scenario() -> None:
        async with MercurySimulator([late], clock=fixed_clock) as sim:
            (result,) = await poll(Mercury230Driver(bus("mercury230", sim.url)), config(late))
        assert values(result).tariffs == late.registers(NOW)

    run(scenario())


def test_mercury_read_at_9600_baud_takes_at_least_its_line_time() -> None:
    # open 11 + 4, energy (tariff 0) 6 + 19, close 4 + 4 characters of 10 bits at 9600 baud: 50 ms
    line_time = frame_time(11 + 4 + 6 + 19 + 4 + 4, 9600)
    virtual = meter("S", 1, tariffs=1)

    async def scenario() -> float:
        async with MercurySimulator([virtual], clock=fixed_clock) as sim:
            driver = Mercury230Driver(bus("mercury230", sim.url, baudrate=9600, frame_pause="0ms"))
            await driver.open()
            try:
                await driver.read(config(virtual))  # the model catches up once
                started = time.monotonic()
                await driver.read(config(virtual))
                return time.monotonic() - started
            finally:
                await driver.close()

    elapsed = run(scenario())
    assert line_time <= elapsed < line_time + 0.5


def test_mercury_late_answer_of_a_timed_out_meter_is_skipped_by_the_next_poll() -> None:
    # F answers 0.4 s late (timeout 0.3 s): its answer arrives while the slow H (50 ms a frame) is polled.
    late, slow = meter("F", 10, Faults(delay=0.4)), meter("H", 11, Faults(delay=0.05), tariffs=2)

    async def scenario() -> None:
        async with MercurySimulator([late, slow], clock=fixed_clock) as sim:
            bad, good = await poll(Mercury230Driver(bus("mercury230", sim.url)), config(late), config(slow))
            assert sim.answers["F"] == 1  # the late answer did reach the line
        assert isinstance(bad, ReadTimeout)
        assert values(good).tariffs == slow.registers(NOW)

    run(scenario())


def test_mercury_answer_waiter_skips_whole_frames_from_other_addresses() -> None:
    request = merc.encode_energy_request(11)
    stale = merc.encode_status_answer(10)
    answer = merc.encode_energy_answer(11, dict.fromkeys(Channel, 1234))
    waiter = AnswerWaiter(request)
    assert not waiter(stale + answer[:5])
    assert waiter(stale + answer)
    assert (waiter.answer, waiter.skipped) == (answer, [10])
    noise = AnswerWaiter(request)
    assert noise(bytes(19))  # not a frame of another meter: handed over, decoding reports it
    with pytest.raises(ProtocolError):
        merc.decode_energy_answer(noise.answer, 11)


class PartialMeter(VirtualMeter):
    """A meter without export (A- FF FF FF FF) whose T2 reports no channel at all."""

    def registers(self, now: datetime | None = None) -> dict[int, Values]:
        shown = super().registers(now)
        for tariff in shown.values():
            tariff[Channel.A_MINUS] = None
        shown[2] = dict.fromkeys(Channel, None)
        return shown


def test_mercury_unsupported_channels_and_tariffs_are_none_or_named() -> None:
    partial = PartialMeter("P", address=9, tariffs=2, start=NOW - timedelta(hours=6))

    async def scenario() -> MeterValues:
        async with MercurySimulator([partial], clock=fixed_clock) as sim:
            (result,) = await poll(Mercury230Driver(bus("mercury230", sim.url)), config(partial))
        return values(result)

    result = run(scenario())
    expected = partial.registers(NOW)
    assert result.tariffs == {0: expected[0], 1: expected[1]}
    assert result.tariffs[0][Channel.A_MINUS] is None
    assert result.errors == {"tariff 2": "not supported: FF FF FF FF in every channel"}


class RefusingSimulator(MercurySimulator):
    """Meters that refuse to read tariff 2 (status 1, illegal command or parameter)."""

    def _answer(
        self, meter: VirtualMeter, request: merc.Request, opened: set[str], registers: dict[int, Values]
    ) -> bytes:
        if isinstance(request, merc.EnergyRequest) and request.tariff == 2:
            return merc.encode_status_answer(request.address, merc.Status.ILLEGAL_COMMAND)
        return super()._answer(meter, request, opened, registers)


def test_mercury_refused_tariff_is_named_and_the_others_are_kept() -> None:
    virtual = meter("R", 4, tariffs=3)

    async def scenario() -> MeterValues:
        async with RefusingSimulator([virtual], clock=fixed_clock) as sim:
            (result,) = await poll(Mercury230Driver(bus("mercury230", sim.url)), config(virtual))
        return values(result)

    result = run(scenario())
    expected = virtual.registers(NOW)
    assert result.tariffs == {0: expected[0], 1: expected[1], 3: expected[3]}
    assert list(result.errors) == ["tariff 2"]
    assert "illegal command" in result.errors["tariff 2"]


@pytest.mark.parametrize(("address", "password"), [(0, None), (241, None), ("x1", None), (5, "12345")])
def test_mercury_address_and_password_are_checked(address: int | str, password: str | None) -> None:
    item = MeterConfig(serial="M", address=address, password=password)
    check = meter_password if password else meter_address
    with pytest.raises(ConfigError, match="meter M: "):
        check(item)


def test_unreachable_lines_raise_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens there
    for url in (f"socket://127.0.0.1:{port}", "/dev/does-not-exist-ttyUSB9"):
        driver = Mercury230Driver(bus("mercury230", url))
        with pytest.raises(ConnectError, match="cannot open"):
            run(driver.open())
        run(driver.close())


# --- IEC 62056-21 --------------------------------------------------------------------


def iec_driver(url: str, **fields: Any) -> Iec62056Driver:
    return Iec62056Driver(bus("iec62056-21", url, **{"baudrate": 19200, **fields}), tz=MSK)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_iec_reads_every_meter_on_one_line_with_its_clock(transport: Transport) -> None:
    meters = [
        meter("E1", "1001", tariffs=2),
        meter("E2", "1002", Faults(clock_drift=timedelta(seconds=-95)), tariffs=3, solar_kw=3.0),
    ]

    async def scenario() -> None:
        async with IecSimulator(meters, transport=transport, baudrate=19200, clock=fixed_clock) as sim:
            results = await poll(iec_driver(sim.url), *map(config, meters))
        for virtual, result in zip(meters, results, strict=True):
            assert values(result).tariffs == virtual.registers(NOW)
            assert values(result).meter_time == NOW + virtual.faults.clock_drift
            assert values(result).errors == {}
        assert values(results[0]).raw["identification"] == "/SIm6AMR-SIM"

    run(scenario())


def test_iec_signs_on_at_300_baud_7e1_unless_the_bus_says_otherwise() -> None:
    virtual = meter("E", "42")
    driver = Iec62056Driver(bus("iec62056-21", "/dev/null"))
    settings = driver.line.settings
    assert (settings.baudrate, settings.bytesize, settings.parity) == (300, 7, "E")
    explicit = Iec62056Driver(bus("iec62056-21", "/dev/null", baudrate=9600, bytesize=8, parity="N"))
    assert (explicit.line.settings.baudrate, explicit.line.settings.parity) == (9600, "N")
    # sign-on "/?42!" CR LF, identification "/SIm6AMR-SIM" CR LF and ACK 0 6 0 CR LF at 300 baud
    handshake = frame_time(7 + 14 + 6, 300)

    async def scenario() -> float:
        async with IecSimulator([virtual], clock=fixed_clock) as sim:
            driver = Iec62056Driver(bus("iec62056-21", sim.url, timeout="1s"), tz=MSK)
            started = time.monotonic()
            (result,) = await poll(driver, config(virtual))
        assert values(result).tariffs == virtual.registers(NOW)
        assert values(result).raw["baudrate"] == 19200
        return time.monotonic() - started

    assert handshake <= run(scenario()) < handshake + 1.0


@pytest.mark.parametrize(("transport", "speed"), [("pty", 19200), ("tcp", 9600)])
def test_iec_switches_speed_on_a_port_and_stays_over_socket(transport: Transport, speed: int) -> None:
    virtual = meter("E", "5")

    async def scenario() -> None:
        async with IecSimulator([virtual], transport=transport, baudrate=9600, clock=fixed_clock) as sim:
            (result,) = await poll(iec_driver(sim.url, baudrate=9600), config(virtual))
        assert values(result).raw["baudrate"] == speed
        assert values(result).tariffs == virtual.registers(NOW)

    run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_iec_password_programming_mode(transport: Transport) -> None:
    locked, other = meter("L", "77", tariffs=2), meter("O", "78")

    async def scenario() -> None:
        passwords = {"L": "31415926"}
        async with IecSimulator(
            [locked, other], transport=transport, baudrate=19200, clock=fixed_clock, passwords=passwords
        ) as sim:
            good, bad, after = await poll(
                iec_driver(sim.url),
                config(locked, password="31415926"),
                config(locked, password="00000000"),
                config(other),
            )
        assert values(good).tariffs == locked.registers(NOW)
        assert values(good).meter_time == NOW
        assert isinstance(bad, DeviceError)
        assert "access denied" in str(bad)
        assert values(after).tariffs == other.registers(NOW)

    run(scenario())


IEC_FAULTS = [
    ("pty", Faults(silent=True), ReadTimeout, "no answer"),
    ("tcp", Faults(silent=True), ReadTimeout, "no answer"),
    ("pty", Faults(corrupt=1.0), ProtocolError, "BCC mismatch"),
    ("tcp", Faults(corrupt=1.0), ProtocolError, "BCC mismatch"),
    ("pty", Faults(drop=1.0), ReadTimeout, "cut short"),
    ("tcp", Faults(drop=1.0), ConnectError, "disconnected"),
    ("pty", Faults(delay=0.6), ReadTimeout, "no answer"),
    ("tcp", Faults(delay=0.6), ReadTimeout, "no answer"),
]


@pytest.mark.parametrize(("transport", "faults", "error", "match"), IEC_FAULTS)
def test_iec_fault_is_reported_and_the_next_meter_reads_fine(
    transport: Transport, faults: Faults, error: type[DriverError], match: str
) -> None:
    faulty, healthy = meter("F", "1", faults), meter("H", "2")

    async def scenario() -> None:
        async with IecSimulator([faulty, healthy], transport=transport, baudrate=19200, clock=fixed_clock) as sim:
            bad, good = await poll(iec_driver(sim.url), config(faulty), config(healthy))
        assert isinstance(bad, error), bad
        assert match in str(bad)
        assert values(good).tariffs == healthy.registers(NOW)

    run(scenario())


def test_iec_option_select_asks_for_the_offer_capped_by_max_baudrate() -> None:
    driver = Iec62056Driver(bus("iec62056-21", "/dev/null"), max_baudrate=4800)
    assert [driver.choose_baudrate(rate) for rate in (300, 2400, 9600, 19200)] == [300, 2400, 4800, 4800]
    assert iec.BAUD_CHARS[driver.choose_baudrate(19200)] == "4"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mercury_reads_the_serial_and_refuses_a_swapped_meter(transport: Transport) -> None:
    """08 00 against the simulator; a meter reporting another serial than configured yields nothing."""
    right, swapped = meter("01100021", 21, tariffs=2), meter("01100077", 22, tariffs=2)

    async def scenario() -> None:
        async with MercurySimulator([right, swapped], transport=transport, clock=fixed_clock) as sim:
            expected = MeterConfig(serial="01100022", address=22, tariffs=2)  # the meter that should be there
            good, bad, again = await poll(
                Mercury230Driver(bus("mercury230", sim.url)), config(right), expected, config(swapped)
            )
        assert values(good).tariffs == right.registers(NOW)
        assert values(good).raw["meter_serial"] == "01100021"
        assert values(good).raw["made"] == (NOW - timedelta(hours=6)).date().isoformat()
        assert isinstance(bad, MeterMismatch)
        assert "reports serial 01100077, not the configured 01100022" in str(bad)
        assert not is_transient(bad)  # a swapped meter stays swapped: not retried
        assert values(again).tariffs == swapped.registers(NOW)  # the line is fine for the next poll

    run(scenario())


def test_mercury_simulator_answers_parameters_after_open() -> None:
    virtual = meter("M-17", 17)

    def check(line: SerialLine) -> tuple[bytes, bytes, bytes]:
        def ask(request: bytes) -> bytes:
            return line.exchange(request, lambda got: merc.is_complete_answer(request, got))

        closed = ask(merc.encode_parameter_request(17, merc.Parameter.SERIAL_AND_DATE))
        merc.decode_status_answer(ask(merc.encode_open_request(17)), 17)
        serial = ask(merc.encode_parameter_request(17, merc.Parameter.SERIAL_AND_DATE))
        variant = ask(merc.encode_parameter_request(17, merc.Parameter.VARIANT))
        return closed, serial, variant

    async def scenario() -> tuple[bytes, bytes, bytes]:
        async with MercurySimulator([virtual], clock=fixed_clock) as sim:
            line = SerialLine(LineSettings(sim.url, timeout=0.5, frame_pause=0.0))

            def work() -> tuple[bytes, bytes, bytes]:
                line.open()
                try:
                    return check(line)
                finally:
                    line.close()

            return await asyncio.to_thread(work)

    closed, serial, variant = run(scenario())
    with pytest.raises(merc.MercuryStatusError, match="channel not open"):
        merc.decode_serial_answer(closed, 17)
    assert merc.decode_serial_answer(serial, 17).serial == "00000017"
    assert len(merc.decode_variant_answer(variant, 17)) == merc.VARIANT_LENGTH


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_iec_signs_on_at_the_line_speed_and_stays_there_without_baud_switch(transport: Transport) -> None:
    virtual = meter("E", "5", tariffs=2)

    async def scenario() -> tuple[MeterValues | DriverError, float]:
        async with IecSimulator([virtual], transport=transport, baudrate=9600, clock=fixed_clock) as sim:
            driver = Iec62056Driver(bus("iec62056-21", sim.url, baudrate=9600, bytesize=7, parity="E",
                                        baud_switch=False))
            started = time.monotonic()
            (result,) = await poll(driver, config(virtual))
            return result, time.monotonic() - started

    result, elapsed = run(scenario())
    assert values(result).raw["baudrate"] == 9600  # the option select named 9600: no switch, even on a pty
    assert values(result).tariffs == virtual.registers(NOW)
    assert elapsed < 1.5  # at 300 baud the same readout takes over 10 s


def test_iec_fixed_speed_must_be_one_an_option_select_can_name() -> None:
    with pytest.raises(ValueError, match="baud_switch = false keeps the line at baudrate = 38400"):
        bus("iec62056-21", "/dev/null", baudrate=38400, baud_switch=False)
