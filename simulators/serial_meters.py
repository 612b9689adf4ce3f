"""IEC 62056-21 and Mercury 230 meters on a simulated RS-485 line (`simulators.serial_line`).

    async with MercurySimulator([VirtualMeter("m1", address=17)], transport="pty") as sim:
        ...  # drivers open sim.url: "/dev/pts/N", or "socket://127.0.0.1:PORT" with transport="tcp"

Several meters share one line (a multi-drop bus): each answers only requests
to its own address. Values come from `VirtualMeter.registers()` and, for IEC
0.9.1/0.9.2, `VirtualMeter.clock()`, encoded by `amr.protocols`. `clock`
(default: now) fixes the moment the meters are read at, for exact tests.

Line speed: a pty passes bytes instantly whatever the baud rate, so each answer
waits for the request's time on the wire and is then written paced at the
current baud rate (`bits_per_char` bits a character: 10 for 8N1 and 7E1), the
IEC handshake at its initial 300 baud included; over TCP it is written in one
piece once its time on the wire has passed. ``line_speed=False`` turns that off.

Faults (`simulators.model.Faults`) per answer: ``silent`` never answers;
``delay`` answers that many seconds late; ``corrupt`` flips a bit of the CRC
(Mercury) or BCC (IEC blocks; the identification has none); ``drop`` closes the
TCP connection instead of answering, and on a pty sends the first half of the
answer and then nothing. ``lower_by_wh``, ``wrap_after`` and ``clock_drift``
act in the model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Unpack
from zoneinfo import ZoneInfo

from amr.core.domain import CHANNELS, Values
from amr.errors import ProtocolError
from amr.protocols import iec62056_21 as iec
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_profile as prof
from amr.protocols.crc import crc_ok
from amr.protocols.iec62056_21 import profile as p01
from amr.protocols.iec62056_21.framing import with_bcc
from amr.protocols.mercury230_instant import AUXILIARY
from simulators import iec_clock, mercury_clock
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.quality import mercury_answer
from simulators.serial_line import LineOptions, Link, SerialSimulator, Transport

VARIANT = bytes((0xB4, 0xE3, 0x87, 0x61, 0x00, 0x00))  # the 6 variant bytes (08 12) every simulated meter sends


def mercury_serial(meter: VirtualMeter) -> str:
    """The 8-digit serial a simulated meter reports (08 00): the digits of its serial, last eight, zero-filled."""
    digits = "".join(c for c in meter.serial if c.isdigit())
    return digits[-8:].rjust(8, "0")


class MercurySimulator(SerialSimulator[set[str]]):
    """Mercury 230 meters (9600 baud): test, open (level 1/2, password), close, energy since reset,
    parameters 08 00 (serial number, manufacture date), 08 12 (variant) and 08 13 (last profile record),
    memory 3 reads (06 03: the power profile, `simulators.profile_memory`), the clock (04 00, a
    correction 03 0D once a day, setting 03 0C at level 2) and journals (04 NN RR)."""

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        profiles: Mapping[str, ProfileMemory] | None = None,
        **options: Unpack[LineOptions],
    ) -> None:
        """`profiles`: serial → the meter's profile memory (default: one from the meter's start)."""
        super().__init__(meters, **options)
        self.profiles = dict(profiles or {})

    def profile(self, meter: VirtualMeter) -> ProfileMemory:
        """The meter's profile memory, made on first use when none was given."""
        if meter.serial not in self.profiles:
            self.profiles[meter.serial] = ProfileMemory(meter)
        return self.profiles[meter.serial]

    def _new_session(self) -> set[str]:
        return set()  # serials whose channel is open

    def _next_frame(self, buffer: bytearray) -> bytes | None:
        for start in range(len(buffer) - 3):
            if crc_ok(buffer[start:]):
                frame = bytes(buffer[start:])
                buffer.clear()
                return frame
        del buffer[:-64]
        return None

    async def _handle(self, frame: bytes, link: Link, session: set[str]) -> None:
        try:
            request = merc.decode_request(frame)
        except ProtocolError:
            return  # a meter ignores a garbled request
        meter = self._meter(str(request.address))
        profile = None if meter is None else self.profiles.get(meter.serial)
        if profile is not None and not profile.powered(self.clock()):
            return  # a meter without power is silent
        if meter is not None:
            registers = {}
            if isinstance(request, merc.EnergyRequest):  # in a thread: the model may lag far behind
                registers = await asyncio.to_thread(meter.registers, self.clock())
            answer = self._answer(meter, request, session, registers)
            await self._reply(link, meter, len(frame), answer, self.baudrate, self.baudrate)

    def _answer(
        self, meter: VirtualMeter, request: merc.Request, opened: set[str], registers: dict[int, Values]
    ) -> bytes:
        address, status = request.address, merc.Status.OK
        if isinstance(request, merc.OpenRequest):
            passwords = {1: self.passwords.get(meter.serial, "111111"), 2: "222222"}
            expected = passwords.get(request.level)
            if expected is None or request.password != merc.password_bytes(expected):
                status = merc.Status.ACCESS_DENIED
            else:
                opened.add(meter.serial)
                opened.discard(f"{meter.serial}#admin")
                if request.level == merc.AccessLevel.ADMIN:
                    opened.add(f"{meter.serial}#admin")
        elif isinstance(request, merc.CloseRequest):
            opened.discard(meter.serial)
            opened.discard(f"{meter.serial}#admin")
        elif isinstance(request, merc.EnergyRequest):
            if meter.serial not in opened:
                status = merc.Status.CHANNEL_NOT_OPEN
            elif request.array != merc.EnergyArray.SINCE_RESET or request.month or request.tariff > 4:
                status = merc.Status.ILLEGAL_COMMAND
            else:
                zeros: Values = dict.fromkeys(CHANNELS, 0)  # a tariff the schedule never used
                single = registers[0] if request.tariff == 1 and meter.tariffs <= 1 else zeros
                values = registers.get(request.tariff, single)
                masked = {c: None if v is None else v & merc.VALUE_MASK for c, v in values.items()}
                return merc.encode_energy_answer(address, masked)
        elif isinstance(request, merc.ParameterRequest):
            if meter.serial not in opened:
                status = merc.Status.CHANNEL_NOT_OPEN
            elif request.parameter == prof.LAST_RECORD and not request.argument:
                return self.profile(meter).last_record_answer(address, self.clock())
            elif request.parameter == merc.Parameter.SERIAL_AND_DATE and not request.argument:
                return merc.encode_serial_answer(address, mercury_serial(meter), meter.start.date())
            elif request.parameter == merc.Parameter.VARIANT and not request.argument:
                return merc.encode_variant_answer(address, VARIANT)
            elif request.parameter == AUXILIARY and len(request.argument) == 1:  # instantaneous values
                answer = mercury_answer(meter, address, request.argument[0], self.clock())
                if answer is not None:
                    return answer
                status = merc.Status.ILLEGAL_COMMAND
            else:
                status = merc.Status.ILLEGAL_COMMAND
        elif isinstance(request, merc.UnknownRequest) and request.command == prof.READ_MEMORY:
            if meter.serial not in opened:
                status = merc.Status.CHANNEL_NOT_OPEN
            elif len(request.parameters) != 4:
                status = merc.Status.ILLEGAL_COMMAND
            else:
                read = prof.ReadRequest(
                    address, request.parameters[0], int.from_bytes(request.parameters[1:3]), request.parameters[3]
                )
                return self.profile(meter).read_answer(address, read, self.clock())
        elif isinstance(request, merc.UnknownRequest):
            status = merc.Status.ILLEGAL_COMMAND
            if request.command in (0x03, 0x04):  # clock and journals
                if meter.serial not in opened:
                    status = merc.Status.CHANNEL_NOT_OPEN
                else:
                    return mercury_clock.answer(meter, request, f"{meter.serial}#admin" in opened, self.clock())
        return merc.encode_status_answer(address, status)


@dataclass
class _IecSession:
    meter: VirtualMeter | None
    stage: str  # "idle" -> "identified" -> readout, or -> "password" -> "authorised"
    baudrate: int


class IecSimulator(SerialSimulator[_IecSession]):
    """IEC 62056-21 mode C meters: sign-on by device address, readout, programming mode (P1, R1/R5, W1 of
    the clock 0.9.1/0.9.2, B0)."""

    default_baudrate: ClassVar[int] = 300  # mode C signs on at 300 baud
    manufacturer: ClassVar[str] = "SIm"  # lower-case third letter: the meter reacts within 20 ms

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        max_baudrate: int = 19200,
        profiles: Mapping[str, ProfileMemory] | None = None,
        **options: Unpack[LineOptions],
    ) -> None:
        """The meters offer `max_baudrate` after sign-on; passwords default to 00000000; `profiles`:
        serial → the meter's load profile, read as P.01 with R5 (default: one from the meter's start)."""
        super().__init__(meters, **options)
        self.max_baudrate = max_baudrate
        self.profiles = dict(profiles or {})

    def _new_session(self) -> _IecSession:
        return _IecSession(None, "idle", self.baudrate)

    def _next_frame(self, buffer: bytearray) -> bytes | None:
        while buffer and buffer[0] not in b"/\x06\x01":  # sign-on, option select, command
            del buffer[0]
        if not buffer:
            return None
        incomplete = 2  # no message is this short
        if buffer[0] == ord("/"):  # /?address!CR LF
            length = buffer.find(b"!\r\n") + 3
        elif buffer[0] == iec.ACK:  # ACK V Z Y CR LF
            length = 6 if len(buffer) >= 6 else incomplete
        else:  # SOH ... ETX BCC
            ends = (i + 2 for i in range(1, len(buffer) - 1) if buffer[i] in (iec.ETX, iec.EOT))
            length = next(ends, incomplete)
        if length == incomplete:
            if len(buffer) > 512:
                buffer.clear()
            return None
        frame = bytes(buffer[:length])
        del buffer[:length]
        return frame

    async def _handle(self, frame: bytes, link: Link, session: _IecSession) -> None:
        baud_in = session.baudrate
        if frame[0] == ord("/"):
            with contextlib.suppress(ProtocolError):
                meter = self._meter(iec.decode_sign_on(frame))
                session.meter, session.stage, session.baudrate = meter, "identified", self.baudrate
                if meter is not None:
                    offer = iec.BAUD_CHARS[self.max_baudrate]
                    ident = iec.encode_identification(iec.Identification(self.manufacturer, offer, "AMR-SIM"))
                    await self._reply(link, meter, len(frame), ident, baud_in, self.baudrate, checked=False)
            return
        meter = session.meter
        if meter is None:
            return
        data_sets = await asyncio.to_thread(self._data_sets, meter)  # the model may lag behind
        answer = self._answer(meter, frame, session, data_sets)
        if answer is not None:
            await self._reply(link, meter, len(frame), answer, baud_in, session.baudrate)
        if session.stage == "idle":
            session.meter, session.baudrate = None, self.baudrate

    def _answer(
        self, meter: VirtualMeter, frame: bytes, session: _IecSession, data_sets: list[iec.DataSet]
    ) -> bytes | None:
        """The meter's answer in its session's stage; None for silence."""
        stage = session.stage
        try:
            if frame[0] == iec.ACK and stage == "identified":
                option = iec.decode_option_select(frame)
                session.baudrate = option.baud_rate
                if option.mode == iec.MODE_PROGRAMMING:
                    session.stage = "password"
                    return iec.encode_command(iec.CommandMessage("P", "0", "()"))
                session.stage = "idle"
                return iec.encode_readout(data_sets) if option.mode == iec.MODE_READOUT else None
            command = iec.decode_command(frame)
        except ProtocolError:
            return bytes((iec.NAK,)) if stage in ("password", "authorised") else None
        if command.command == "B" or stage not in ("password", "authorised"):
            session.stage = "idle"
            return None
        if command.command == "P" and stage == "password":
            if command.data == f"({self.passwords.get(meter.serial, '00000000')})":
                session.stage = "authorised"
                return bytes((iec.ACK,))
            session.stage = "idle"
            return iec.encode_break()  # a wrong password is answered with a break, as DRS110M meters do
        if command.command == "R" and stage == "authorised" and (command.data or "").startswith("P.98("):
            return iec_clock.logbook(meter)  # R5 P.98(;): the logbook
        if command.command == "R" and stage == "authorised" and command.data is not None:
            code = command.data.partition("(")[0]
            if code == p01.PROFILE:
                return self._profile_answer(meter, command.data)
            found = [d for d in data_sets if d.address == code] or [iec.DataSet("", "ERROR")]
            return iec.encode_data_message(found[:1])
        if command.command == "W" and command.command_type == "1" and stage == "authorised" and command.data:
            return iec_clock.write(meter, command.data, self.clock())  # 0.9.1 / 0.9.2
        return bytes((iec.NAK,))

    def _profile_answer(self, meter: VirtualMeter, data: str) -> bytes:
        """The P.01 answer to ``P.01(from;to)`` in one block; ``P.01(ERROR)`` for a bad range."""
        zone = ZoneInfo(meter.timezone)
        first, _, last = data[len(p01.PROFILE) + 1 : -1].partition(";")
        try:
            start = p01.parse_stamp(first, zone) if first else datetime.min.replace(tzinfo=UTC)
            end = p01.parse_stamp(last, zone) if last else datetime.max.replace(tzinfo=UTC)
        except ProtocolError:
            return with_bcc(iec.STX, b"P.01(ERROR)\r\n" + bytes((iec.ETX,)))
        if meter.serial not in self.profiles:
            self.profiles[meter.serial] = ProfileMemory(meter)
        entries = self.profiles[meter.serial].iec_entries(start, end, self.clock())
        text = p01.encode_profile(entries, zone) or "P.01(ERROR)\r\n"
        return with_bcc(iec.STX, text.encode("ascii") + bytes((iec.ETX,)))

    def _data_sets(self, meter: VirtualMeter) -> list[iec.DataSet]:
        """The readout: error register, serial number, energy registers, clock in the meter's zone."""
        now = self.clock()
        local = meter.clock(now).astimezone(ZoneInfo(meter.timezone))
        sets = [iec.DataSet("F.F", "00000000")]
        if meter.serial.replace("-", "").isalnum() and meter.serial.isascii():
            sets.append(iec.DataSet("C.1.0", meter.serial))
        sets += iec.energy_data_sets(meter.registers(now))
        sets.append(iec.DataSet("0.9.1", local.strftime("%H%M%S")))
        sets.append(iec.DataSet("0.9.2", local.strftime("%y%m%d")))
        return sets


__all__ = ["IecSimulator", "MercurySimulator", "SerialSimulator", "Transport"]
