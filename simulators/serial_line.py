"""A simulated RS-485 line for serial meter simulators: a pty or a TCP socket on 127.0.0.1.

Several meters share one line (a multi-drop bus): each answers only requests to its
own address. A subclass says how frames are cut from the byte stream and answered.

Line speed: a pty passes bytes instantly whatever the baud rate, so each answer waits
for the request's time on the wire and is then written paced at the current baud rate
(`bits_per_char` bits a character: 10 for 8N1 and 7E1). Over TCP the answer waits for its
own time on the wire too and is then written in one piece, as a converter sends a frame in
one TCP segment (frames longer than 200 ms of line time: in 200 ms pieces). ``line_speed=False`` turns the waiting off.

Faults (`simulators.model.Faults`) per answer: ``silent`` never answers; ``delay``
answers that many seconds late; ``corrupt`` is the protocol's to apply (CRC/BCC);
``drop`` closes the TCP connection instead of answering, and on a pty sends the first
half of the answer and then nothing.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import tty
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, Literal, TypedDict, TypeVar

from amr.drivers.serial_line import frame_time
from simulators.model import VirtualMeter
from simulators.serving import LOOPBACK, Connections, Service

Transport = Literal["pty", "tcp"]
PACKING = 0.2  # seconds of line time a simulated converter packs into one TCP segment at most
S = TypeVar("S")


class LineOptions(TypedDict, total=False):
    """Keyword options of every simulator, as `SerialSimulator` takes them."""

    transport: Transport
    port: int
    baudrate: int | None
    line_speed: bool
    clock: Callable[[], datetime] | None
    passwords: Mapping[str, str] | None


@dataclass(eq=False)  # one per connection: compared and hashed by identity
class Link:
    """One connection to the simulated line: bytes in from `reader`, out through `send`."""

    reader: asyncio.StreamReader
    send: Callable[[bytes], Awaitable[None]]
    writer: asyncio.StreamWriter | None = None  # TCP only: a pty cannot be dropped

    def close(self) -> None:
        """Drop a TCP connection."""
        if self.writer is not None:
            self.writer.close()


class SerialSimulator(Service, Generic[S]):
    """Meters on one simulated line; use ``async with``, then point a driver at `url`."""

    default_baudrate: ClassVar[int] = 9600
    bits_per_char: ClassVar[int] = 10  # start + 8 data + stop (8N1), or start + 7 data + parity + stop (7E1)

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        transport: Transport = "pty",
        port: int = 0,
        baudrate: int | None = None,
        line_speed: bool = True,
        clock: Callable[[], datetime] | None = None,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        """`port`: the TCP port (0: any free one); `baudrate`: the line's speed (IEC: the sign-on speed);
        `passwords`: serial → password."""
        self.meters = list(meters)
        self.transport = transport
        self.port = port
        self.baudrate = baudrate or self.default_baudrate
        self.line_speed = line_speed
        self.clock = clock or (lambda: datetime.now(UTC))
        self.passwords = dict(passwords or {})
        self.answers: Counter[str] = Counter()  # serial → answers sent
        self.url = ""
        self._bus = asyncio.Lock()  # one frame on the wire at a time (meters react independently)
        self._connections = Connections()
        self._server: asyncio.Server | None = None
        self._pty: tuple[int, int, asyncio.BaseTransport] | None = None

    async def start(self) -> None:
        """Open the pty or listen on 127.0.0.1 (`port`, or a free one); sets `url`."""
        if self.transport == "pty":
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing, until a driver opens it
            reader = asyncio.StreamReader()
            pipe = os.fdopen(master, "rb", buffering=0, closefd=False)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
            self._pty, self.url = (master, slave, transport), os.ttyname(slave)
            self._connections.spawn(self._serve(Link(reader, self._pty_send)))
        elif self.transport == "tcp":
            self._server = await asyncio.start_server(self._accept, LOOPBACK, self.port)
            self.url = f"socket://{LOOPBACK}:{self._server.sockets[0].getsockname()[1]}"
        else:
            raise ValueError(f"transport is 'pty' or 'tcp'; got {self.transport!r}")

    async def stop(self) -> None:
        """Close every connection, the server and the pty."""
        await self._connections.close(self._server)
        if self._pty is not None:
            master, slave, transport = self._pty
            transport.close()
            os.close(master)
            os.close(slave)
            self._pty = None

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

        link = Link(reader, send, writer)
        with self._connections.serving(link):
            await self._serve(link)

    async def _serve(self, link: Link) -> None:
        session = self._new_session()
        buffer = bytearray()
        try:
            while data := await link.reader.read(4096):
                buffer += data
                while (frame := self._next_frame(buffer)) is not None:
                    self._connections.spawn(self._handle(frame, link, session))  # a late meter holds up no one
        except ConnectionError:
            pass
        finally:
            link.close()

    def _meter(self, address: str) -> VirtualMeter | None:
        """The meter at `address`; "" or "0" (everyone) only when it is alone on the line."""
        if address in ("", "0"):
            return self.meters[0] if len(self.meters) == 1 else None
        return next((m for m in self.meters if str(m.address) == address), None)

    async def _reply(
        self,
        link: Link,
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

    async def _transmit(self, link: Link, data: bytes, baudrate: int) -> None:
        """Send `data` no faster than `baudrate` carries it (`bits_per_char` bits a character).

        On a pty the characters follow one another as a meter's UART sends them. Over TCP the
        line's time is spent first and the frame then goes out in one write, as an
        RS-485-to-Ethernet converter packs a frame into one TCP segment (clients read one frame
        per ``recv()``); a frame longer than the converter's packing time (`PACKING`) goes out in
        pieces of that much line time, so its first bytes are not held back past a reader's timeout.
        """
        if not self.line_speed:
            await link.send(data)
            return
        if link.writer is not None:
            piece = max(1, int(PACKING / frame_time(1, baudrate, self.bits_per_char)))
            for first in range(0, len(data), piece):
                chunk = data[first : first + piece]
                await asyncio.sleep(frame_time(len(chunk), baudrate, self.bits_per_char))
                await link.send(chunk)
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
    async def _handle(self, frame: bytes, link: Link, session: S) -> None:
        """Answer one request (or stay silent, as a meter does for another address)."""
