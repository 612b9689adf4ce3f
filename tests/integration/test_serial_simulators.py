"""The serial-line simulators at byte level, over a real pty and over TCP: addressing, values, pacing, faults.

Requests are built with the codecs and sent with `SerialLine`; the drivers'
own tests are in test_serial_drivers.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from amr.core.domain import Channel
from amr.drivers.serial_line import LineSettings, SerialLine, frame_time
from amr.errors import ConnectError, ReadTimeout
from amr.protocols import iec62056_21 as iec
from amr.protocols import mercury230 as merc
from amr.protocols.crc import crc_ok
from simulators.model import Faults, VirtualMeter
from simulators.serial_meters import IecSimulator, MercurySimulator, SerialSimulator, Transport

T = TypeVar("T")
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
TRANSPORTS: list[Transport] = ["pty", "tcp"]


def fixed_clock() -> datetime:
    return NOW


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


def meter(serial: str, address: int | str, faults: Faults | None = None, **fields: Any) -> VirtualMeter:
    return VirtualMeter(serial, address=address, start=NOW - timedelta(hours=6), faults=faults or Faults(), **fields)


async def on_line(sim: SerialSimulator[Any], check: Callable[[SerialLine], T], **settings: Any) -> T:
    """Run `check` with a line open to the simulator, in a worker thread, as drivers do."""
    line = SerialLine(LineSettings(sim.url, **{"timeout": 0.3, "frame_pause": 0.0, **settings}))

    def work() -> T:
        line.open()
        try:
            return check(line)
        finally:
            line.close()

    return await asyncio.to_thread(work)


def ask(line: SerialLine, request: bytes) -> bytes:
    return line.exchange(request, lambda got: merc.is_complete_answer(request, got))


def open_and_read(address: int, tariff: int = 0) -> Callable[[SerialLine], bytes]:
    def check(line: SerialLine) -> bytes:
        merc.decode_status_answer(ask(line, merc.encode_open_request(address)), address)
        return ask(line, merc.encode_energy_request(address, tariff=tariff))

    return check


# --- Mercury 230 -----------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mercury_answers_only_the_addressed_meter_with_its_registers(transport: Transport) -> None:
    meters = [meter("A", 17, tariffs=2), meter("B", 18, tariffs=1)]

    async def scenario() -> None:
        async with MercurySimulator(meters, transport=transport, clock=fixed_clock, line_speed=False) as sim:
            for tariff in (0, 1, 2):
                answer = await on_line(sim, open_and_read(17, tariff))
                assert merc.decode_energy_answer(answer, 17) == meters[0].registers(NOW)[tariff]
            answer = await on_line(sim, open_and_read(18, 1))  # single-tariff meter: T1 is the total
            assert merc.decode_energy_answer(answer, 18) == meters[1].registers(NOW)[0]
            with pytest.raises(ReadTimeout, match="no answer"):
                await on_line(sim, open_and_read(99))
            assert sim.answers == {"A": 6, "B": 2}

    run(scenario())


def test_mercury_refuses_energy_before_open_and_a_wrong_password() -> None:
    async def scenario() -> None:
        async with MercurySimulator(
            [meter("A", 5)], line_speed=False, passwords={"A": "123456"}, clock=fixed_clock
        ) as sim:
            refused = await on_line(sim, lambda line: ask(line, merc.encode_energy_request(5)))
            with pytest.raises(merc.MercuryStatusError, match="channel not open"):
                merc.decode_energy_answer(refused, 5)
            denied = await on_line(sim, lambda line: ask(line, merc.encode_open_request(5)))
            with pytest.raises(merc.MercuryStatusError, match="access denied"):
                merc.decode_status_answer(denied, 5)
            opened = await on_line(sim, lambda line: ask(line, merc.encode_open_request(5, password="123456")))
            merc.decode_status_answer(opened, 5)

    run(scenario())


def test_mercury_answer_is_paced_at_the_line_speed_on_a_pty() -> None:
    request = merc.encode_energy_request(3)
    minimum = frame_time(len(request) + merc.ENERGY_ANSWER_LENGTH, 1200)  # 208 ms at 1200 baud

    def timed(line: SerialLine) -> float:
        merc.decode_status_answer(ask(line, merc.encode_open_request(3)), 3)
        started = time.monotonic()
        line.send(request)
        line.receive(lambda got: merc.is_complete_answer(request, got))
        return time.monotonic() - started

    async def scenario() -> None:
        async with MercurySimulator([meter("A", 3)], baudrate=1200, clock=fixed_clock) as sim:
            elapsed = await on_line(sim, timed)
            assert minimum <= elapsed < minimum + 0.5

    run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mercury_faults_at_byte_level(transport: Transport) -> None:
    request = merc.encode_open_request(1)

    async def scenario() -> None:
        async with MercurySimulator(
            [meter("C", 1, Faults(corrupt=1.0))], transport=transport, clock=fixed_clock
        ) as sim:
            answer = await on_line(sim, lambda line: ask(line, request))
            assert len(answer) == merc.STATUS_ANSWER_LENGTH and not crc_ok(answer)
        async with MercurySimulator(
            [meter("S", 1, Faults(silent=True))], transport=transport, clock=fixed_clock
        ) as sim:
            with pytest.raises(ReadTimeout, match="no answer"):
                await on_line(sim, lambda line: ask(line, request))
        async with MercurySimulator([meter("D", 1, Faults(drop=1.0))], transport=transport, clock=fixed_clock) as sim:
            if transport == "tcp":  # the connection is closed instead of an answer
                with pytest.raises(ConnectError, match="disconnected"):
                    await on_line(sim, lambda line: ask(line, request))
            else:  # the first half of the frame, then silence
                with pytest.raises(ReadTimeout, match="cut short: 2 bytes"):
                    await on_line(sim, lambda line: ask(line, request))
        async with MercurySimulator([meter("L", 1, Faults(delay=0.5))], transport=transport, clock=fixed_clock) as sim:
            with pytest.raises(ReadTimeout):
                await on_line(sim, lambda line: ask(line, request))

    run(scenario())


# --- IEC 62056-21 ------------------------------------------------------------------


def sign_on_and_read(address: str, option: bytes) -> Callable[[SerialLine], tuple[bytes, bytes]]:
    def check(line: SerialLine) -> tuple[bytes, bytes]:
        ident = line.exchange(iec.encode_sign_on(address), lambda got: got.endswith(b"\r\n"))
        receiver = iec.BlockReceiver()
        line.send(option)
        block = line.receive(lambda got: receiver.feed(got) is not None)
        return ident, block

    return check


def test_iec_handshake_runs_at_300_baud_then_at_the_offered_speed() -> None:
    meters = [meter("A", "1001"), meter("B", "1002")]
    sign_on = iec.encode_sign_on("1002")

    def timed(line: SerialLine) -> tuple[float, iec.Identification]:
        started = time.monotonic()
        ident = line.exchange(sign_on, lambda got: got.endswith(b"\r\n"))
        return time.monotonic() - started, iec.decode_identification(ident)

    async def scenario() -> None:
        async with IecSimulator(meters, max_baudrate=9600, clock=fixed_clock) as sim:
            elapsed, ident = await on_line(sim, timed, baudrate=300, bytesize=7, parity="E")
            wire = frame_time(len(sign_on) + len(iec.encode_identification(ident)), 300)
            assert wire <= elapsed < wire + 0.5  # about 0.6 s of the 1.6 s handshake
            assert (ident.manufacturer, ident.baud_rate, ident.reaction_time_ms) == ("SIm", 9600, 20)
            assert sim.answers == {"B": 1}

    run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_iec_readout_by_address_on_a_shared_line(transport: Transport) -> None:
    meters = [meter("A", "1001"), meter("B", "1002")]
    option = iec.encode_option_select(19200)

    async def scenario() -> None:
        async with IecSimulator(meters, transport=transport, baudrate=19200, clock=fixed_clock) as sim:
            _, block = await on_line(sim, sign_on_and_read("1001", option), baudrate=19200)
            assert iec.energy_readings(iec.decode_readout(block)) == meters[0].registers(NOW)
            with pytest.raises(ReadTimeout):  # everyone at once on a shared line: nobody answers
                await on_line(sim, sign_on_and_read("", option), baudrate=19200)
            assert sim.answers == {"A": 2}

    run(scenario())


def block_of(line: SerialLine, message: bytes) -> bytes:
    receiver = iec.BlockReceiver()
    return line.exchange(message, lambda got: receiver.feed(got) is not None)


def programming(password: str) -> Callable[[SerialLine], tuple[bytes, bytes, bytes | None]]:
    """Sign on in programming mode, send the password and, if accepted, read 1.8.0."""

    def check(line: SerialLine) -> tuple[bytes, bytes, bytes | None]:
        line.exchange(iec.encode_sign_on("7"), lambda got: got.endswith(b"\r\n"))
        prompt = block_of(line, iec.encode_option_select(19200, iec.MODE_PROGRAMMING))
        reply = block_of(line, iec.encode_password(password))
        if reply != bytes((iec.ACK,)):
            return prompt, reply, None
        return prompt, reply, block_of(line, iec.encode_command(iec.CommandMessage("R", "1", "1.8.0()")))

    return check


def test_iec_programming_mode_password_and_register_read() -> None:
    meters = [meter("P", 7)]

    async def scenario() -> None:
        async with IecSimulator(meters, baudrate=19200, clock=fixed_clock, passwords={"P": "12345678"}) as sim:
            prompt, ack, data = await on_line(sim, programming("12345678"), baudrate=19200)
            assert iec.decode_command(prompt) == iec.CommandMessage("P", "0", "()")
            assert ack == bytes((iec.ACK,))
            assert data is not None
            a_plus = meters[0].registers(NOW)[0][Channel.A_PLUS]
            assert iec.energy_readings(iec.decode_data_message(data)) == {0: {Channel.A_PLUS: a_plus}}
            _, refused, _ = await on_line(sim, programming("00000000"), baudrate=19200)
            assert iec.decode_command(refused) == iec.CommandMessage("B", "0")  # a break, as DRS110M meters do

    run(scenario())


def test_iec_corrupt_flips_the_bcc_and_not_the_identification() -> None:
    async def scenario() -> None:
        async with IecSimulator([meter("X", 1, Faults(corrupt=1.0))], baudrate=19200, clock=fixed_clock) as sim:
            ident, block = await on_line(sim, sign_on_and_read("1", iec.encode_option_select(19200)), baudrate=19200)
            iec.decode_identification(ident)
            assert iec.bcc(block[1:-1]) != block[-1]

    run(scenario())
