"""IEC 62056-21 and Mercury 230 meters on a simulated RS-485 line: a pty or a TCP socket on 127.0.0.1.

    async with MercurySimulator([VirtualMeter("m1", address=17)], transport="pty") as sim:
        ...  # drivers open sim.url: "/dev/pts/N", or "socket://127.0.0.1:PORT" with transport="tcp"

Several meters share one line (a multi-drop bus): each answers only requests
to its own address. Values come from `VirtualMeter.registers()` and, for IEC
0.9.1/0.9.2, `VirtualMeter.clock()`, encoded by `amr.protocols`. `clock`
(default: now) fixes the moment the meters are read at, for exact tests.

Line speed: a pty passes bytes instantly whatever the baud rate, so each answer
waits for the request's time on the wire and is then written paced at the
current baud rate (`bits_per_char` bits a character: 10 for 8N1 and 7E1), the
IEC handshake at its initial 300 baud included. ``line_speed=False`` turns that off.

Faults (`simulators.model.Faults`) per answer: ``silent`` never answers;
``delay`` answers that many seconds late; ``corrupt`` flips a bit of the CRC
(Mercury) or BCC (IEC blocks; the identification has none); ``drop`` closes the
TCP connection instead of answering, and on a pty sends the first half of the
answer and then nothing. ``lower_by_wh``, ``wrap_after`` and ``clock_drift``
act in the model.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import tty
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Self, TypedDict, TypeVar, Unpack
from zoneinfo import ZoneInfo

from amr.domain import CHANNELS, Values
from amr.drivers.serial_line import frame_time
from amr.errors import ProtocolError
from amr.protocols import iec62056_21 as iec
from amr.protocols import mercury230 as merc
from amr.protocols.crc import crc_ok
from simulators.model import VirtualMeter

Transport = Literal["pty", "tcp"]
S = TypeVar("S")


class LineOptions(TypedDict, total=False):
    """Keyword options of every simulator, as `SerialSimulator` takes them."""

    transport: Transport
    baudrate: int | None
    line_speed: bool
    clock: Callable[[], datetime] | None
    passwords: Mapping[str, str] | None


@dataclass
class _Link:
    """One connection to the simulated line: bytes in from `reader`, out through `send`."""

    reader: asyncio.StreamReader
    send: Callable[[bytes], Awaitable[None]]
    writer: asyncio.StreamWriter | None = None  # TCP only: a pty cannot be dropped

    def close(self) -> None:
        """Drop a TCP connection."""
        if self.writer is not None:
            self.writer.close()


class SerialSimulator(abc.ABC, Generic[S]):
    """Meters on one simulated line; use ``async with``, then point a driver at `url`."""

    default_baudrate: ClassVar[int] = 9600
    bits_per_char: ClassVar[int] = 10  # start + 8 data + stop (8N1), or start + 7 data + parity + stop (7E1)

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        transport: Transport = "pty",
        baudrate: int | None = None,
        line_speed: bool = True,
        clock: Callable[[], datetime] | None = None,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        """`baudrate`: the line's speed (IEC: the sign-on speed); `passwords`: serial → password."""
        self.meters = list(meters)
        self.transport = transport
        self.baudrate = baudrate or self.default_baudrate
        self.line_speed = line_speed
        self.clock = clock or (lambda: datetime.now(UTC))
        self.passwords = dict(passwords or {})
        self.answers: Counter[str] = Counter()  # serial → answers sent
        self.url = ""
        self._bus = asyncio.Lock()  # one frame on the wire at a time (meters react independently)
        self._links: list[_Link] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._pty: tuple[int, int, asyncio.BaseTransport] | None = None

    async def start(self) -> None:
        """Open the pty or listen on 127.0.0.1 (a free port); sets `url`."""
        if self.transport == "pty":
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing, until a driver opens it
            reader = asyncio.StreamReader()
            pipe = os.fdopen(master, "rb", buffering=0, closefd=False)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
            self._pty, self.url = (master, slave, transport), os.ttyname(slave)
            self._spawn(self._serve(_Link(reader, self._pty_send)))
        elif self.transport == "tcp":
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            self.url = f"socket://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        else:
            raise ValueError(f"transport is 'pty' or 'tcp'; got {self.transport!r}")

    async def stop(self) -> None:
        """Close every connection, the server and the pty."""
        if self._server is not None:
            self._server.close()
        for link in self._links:
            link.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._pty is not None:
            master, slave, transport = self._pty
            transport.close()
            os.close(master)
            os.close(slave)
            self._pty = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _pty_send(self, data: bytes) -> None:
        assert self._pty is not None
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._pty[0], view) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(data: bytes) -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(data)
                await writer.drain()

        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(_Link(reader, send, writer))
        finally:
            self._tasks.discard(task)

    async def _serve(self, link: _Link) -> None:
        self._links.append(link)
        session = self._new_session()
        buffer = bytearray()
        try:
            while data := await link.reader.read(4096):
                buffer += data
                while (frame := self._next_frame(buffer)) is not None:
                    self._spawn(self._handle(frame, link, session))  # a late meter holds up no one
        except ConnectionError:
            pass
        finally:
            self._links.remove(link)
            link.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _meter(self, address: str) -> VirtualMeter | None:
        """The meter at `address`; "" or "0" (everyone) only when it is alone on the line."""
        if address in ("", "0"):
            return self.meters[0] if len(self.meters) == 1 else None
        return next((m for m in self.meters if str(m.address) == address), None)

    async def _reply(
        self,
        link: _Link,
        meter: VirtualMeter,
        request: int,
        answer: bytes,
        baud_in: int,
        baud_out: int,
        *,
        checked: bool = True,
    ) -> None:
        """Answer a request of `request` bytes, faults applied; a `checked` answer ends with a CRC or BCC."""
        faults = meter.faults
        if faults.silent:
            return
        if self.line_speed:
            await asyncio.sleep(frame_time(request, baud_in, self.bits_per_char))
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if meter.roll(faults.drop):
            if link.writer is not None:
                link.close()
                return
            answer = answer[: len(answer) // 2]
        elif checked and len(answer) > 2 and meter.roll(faults.corrupt):
            answer = answer[:-1] + bytes((answer[-1] ^ 0x01,))
        async with self._bus:
            await self._transmit(link, answer, baud_out)
        self.answers[meter.serial] += 1

    async def _transmit(self, link: _Link, data: bytes, baudrate: int) -> None:
        """Write `data` no faster than `baudrate` carries it, a character every `bits_per_char` bits."""
        if not self.line_speed:
            await link.send(data)
            return
        loop = asyncio.get_running_loop()
        char, start, sent = frame_time(1, baudrate, self.bits_per_char), loop.time(), 0
        while sent < len(data):
            due = min(len(data), int((loop.time() - start) / char))
            if due > sent:
                await link.send(data[sent:due])
                sent = due
            if sent < len(data):
                await asyncio.sleep(max(0.0, start + (sent + 1) * char - loop.time()))

    @abc.abstractmethod
    def _new_session(self) -> S:
        """Protocol state of one connection."""

    @abc.abstractmethod
    def _next_frame(self, buffer: bytearray) -> bytes | None:
        """Take one whole request out of `buffer`, if there is one."""

    @abc.abstractmethod
    async def _handle(self, frame: bytes, link: _Link, session: S) -> None:
        """Answer one request (or stay silent, as a meter does for another address)."""


class MercurySimulator(SerialSimulator[set[str]]):
    """Mercury 230 meters (9600 baud): test, open (level 1/2, password), close, energy since reset."""

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

    async def _handle(self, frame: bytes, link: _Link, session: set[str]) -> None:
        try:
            request = merc.decode_request(frame)
        except ProtocolError:
            return  # a meter ignores a garbled request
        meter = self._meter(str(request.address))
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
        elif isinstance(request, merc.CloseRequest):
            opened.discard(meter.serial)
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
        elif isinstance(request, merc.UnknownRequest):
            status = merc.Status.ILLEGAL_COMMAND
        return merc.encode_status_answer(address, status)


@dataclass
class _IecSession:
    meter: VirtualMeter | None
    stage: str  # "idle" -> "identified" -> readout, or -> "password" -> "authorised"
    baudrate: int


class IecSimulator(SerialSimulator[_IecSession]):
    """IEC 62056-21 mode C meters: sign-on by device address, readout, programming mode (P1, R1/R5, B0)."""

    default_baudrate: ClassVar[int] = 300  # mode C signs on at 300 baud
    manufacturer: ClassVar[str] = "SIm"  # lower-case third letter: the meter reacts within 20 ms

    def __init__(
        self, meters: Iterable[VirtualMeter], *, max_baudrate: int = 19200, **options: Unpack[LineOptions]
    ) -> None:
        """The meters offer `max_baudrate` after sign-on; passwords default to 00000000."""
        super().__init__(meters, **options)
        self.max_baudrate = max_baudrate

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

    async def _handle(self, frame: bytes, link: _Link, session: _IecSession) -> None:
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
        if command.command == "R" and stage == "authorised" and command.data is not None:
            code = command.data.partition("(")[0]
            found = [d for d in data_sets if d.address == code] or [iec.DataSet("", "ERROR")]
            return iec.encode_data_message(found[:1])
        return bytes((iec.NAK,))

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
