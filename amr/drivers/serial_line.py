"""A blocking serial line over pyserial's ``serial_for_url``: one code path for every way to a bus.

The same driver reaches a meter through any of these URLs:

=========================  ===================================================
``/dev/ttyUSB0``           a local port (USB-RS-485 adapter, optical head)
``/dev/pts/7``             a pseudo-terminal (the simulators in `simulators`)
``socket://host:port``     an RS-485-to-Ethernet converter in TCP server mode;
                           the converter's serial side has a fixed speed, so
                           baud-rate changes are not passed on
``rfc2217://host:port``    a converter speaking RFC 2217, which does pass on
                           baud rate, data bits and parity
=========================  ===================================================

Timing of one exchange on a half-duplex line (RS-485 carries one frame at a time)::

    | frame pause | request on the wire | meter reaction | answer on the wire |
    ^ line quiet                        ^ first-byte deadline runs from here

Reads are deadline based: the first byte must arrive within ``timeout`` after
the request has left the wire, each later gap between bytes must be shorter
than ``timeout``, and a read never blocks more than one poll slice (`POLL`,
10 ms) past its deadline. The line blocks; `SerialLineDriver`, the base of the
serial drivers, calls it through ``asyncio.to_thread`` so that the event loop never
waits on a port.

Errors: pyserial, OS and socket failures become `ConnectError` (and the port is
closed, so the next `open` reconnects); silence becomes `ReadTimeout`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, tzinfo
from typing import Any, ClassVar

import serial

from amr.config import BusConfig, MeterConfig
from amr.drivers.base import MeterValues, PollDriver
from amr.drivers.serial_settings import SerialBusSettings
from amr.errors import ConnectError, ProtocolError, ReadTimeout

POLL = 0.01  # seconds: the longest single blocking read
MAX_ANSWER_BYTES = 65536  # an answer longer than this is noise, not a meter

Done = Callable[[bytes], bool]
"""A completion predicate: True when the bytes received so far hold a whole answer."""


def bits_per_char(bytesize: int = 8, parity: str = "N", stopbits: int = 1) -> int:
    """Bits on the wire per character: start, data, parity if any, stop bits (8N1 and 7E1: 10)."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def frame_time(nbytes: int, baudrate: int, bits: int = 10) -> float:
    """Seconds that `nbytes` characters of `bits` bits each take on the wire at `baudrate`."""
    return nbytes * bits / baudrate


def rtu_gap(baudrate: int) -> float:
    """The 3.5-character gap that ends a frame (11 bits a character), fixed 1.75 ms above 19200 baud.

    Modbus RTU defines it; it is also the shortest safe turnaround on any RS-485 line.
    """
    return 3.5 * 11 / baudrate if baudrate <= 19200 else 0.00175


def frame_pause(line: SerialBusSettings) -> float:
    """Seconds of quiet line before each request: the bus's ``frame_pause``, else the gap at its speed."""
    return rtu_gap(line.baudrate) if line.frame_pause is None else line.frame_pause.total_seconds()


@dataclass(frozen=True, slots=True)
class LineSettings:
    """How to open a line: URL, character framing, timeout and turnaround pause (seconds)."""

    url: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1
    timeout: float = 1.0
    frame_pause: float = 0.02  # `from_bus` gives the bus's, by default the 3.5-character gap

    @classmethod
    def from_bus(cls, bus: BusConfig, **overrides: Any) -> LineSettings:
        """The settings of a configured bus, with `overrides` (e.g. ``baudrate=300``) applied.

        Without a configured ``frame_pause`` the pause is the 3.5-character gap at the line's speed.
        """
        line = SerialBusSettings.of(bus)
        settings = cls(
            url=bus.url,
            baudrate=line.baudrate,
            bytesize=line.bytesize,
            parity=line.parity,
            stopbits=line.stopbits,
            timeout=bus.timeout.total_seconds(),
            frame_pause=frame_pause(line),
        )
        settings = replace(settings, **overrides)
        if line.frame_pause is None and "frame_pause" not in overrides:
            settings = replace(settings, frame_pause=rtu_gap(settings.baudrate))
        return settings

    @property
    def bits(self) -> int:
        """Bits per character with these settings."""
        return bits_per_char(self.bytesize, self.parity, self.stopbits)

    @property
    def passes_baud_changes(self) -> bool:
        """False for ``socket://``: a plain TCP converter keeps its own fixed baud rate."""
        return not self.url.startswith("socket://")


class SerialLine:
    """One serial line: open, send a frame, receive until complete, change speed, close.

    Not thread-safe: a driver holds its own lock around a whole transaction.
    """

    def __init__(self, settings: LineSettings) -> None:
        """Prepare the line; nothing is opened until `open`."""
        self.settings = settings
        self._port: Any = None
        self._baudrate = settings.baudrate
        self._quiet_since = 0.0  # monotonic time the last frame left or arrived
        self._sent_until = 0.0  # monotonic time the last request has left the wire

    @property
    def is_open(self) -> bool:
        """True while the port or connection is open."""
        return self._port is not None

    @property
    def baudrate(self) -> int:
        """The baud rate the line runs at now."""
        return self._baudrate

    def open(self) -> None:
        """Open the port (or connect) unless open; raise `ConnectError` when it cannot be opened."""
        if self._port is not None:
            return
        s = self.settings
        try:
            port = serial.serial_for_url(
                s.url,
                do_not_open=True,
                baudrate=self._baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=POLL,
                write_timeout=max(s.timeout, 1.0),
            )
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConnectError(f"cannot open serial line {s.url}: {exc}") from exc
        self._port = port

    def close(self) -> None:
        """Close the port; never raises."""
        port, self._port = self._port, None
        if port is None:
            return
        sock = getattr(port, "_socket", None)  # pyserial's socket:// skips closing it if shutdown fails
        with contextlib.suppress(Exception):
            port.close()
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.close()

    def set_baudrate(self, baudrate: int) -> None:
        """Switch the line's speed (a no-op on the wire for ``socket://``)."""
        if baudrate == self._baudrate:
            return
        self._baudrate = baudrate
        if self._port is not None:
            with self._errors("change the baud rate of"):
                self._port.baudrate = baudrate

    def frame_time(self, nbytes: int) -> float:
        """Seconds `nbytes` characters take on this line at its current speed."""
        return frame_time(nbytes, self._baudrate, self.settings.bits)

    def send(self, frame: bytes, *, pause: float | None = None) -> None:
        """Wait for the turnaround pause, discard stale input, write `frame`.

        `pause` overrides the bus's ``frame_pause`` (e.g. a meter's reaction time).
        """
        port = self._require()
        wait = self._quiet_since + (self.settings.frame_pause if pause is None else pause)
        delay = wait - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with self._errors("write to"):
            port.reset_input_buffer()
            port.write(frame)
        self._sent_until = time.monotonic() + self.frame_time(len(frame))
        self._quiet_since = self._sent_until

    def drain(self) -> None:
        """Block until the bytes written have left the port (before a baud-rate change)."""
        port = self._require()
        with self._errors("drain"):
            port.flush()
        delay = self._sent_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def receive(self, done: Done, timeout: float | None = None) -> bytes:
        """Bytes received until `done` says the answer is whole.

        Raises `ReadTimeout` when the first byte does not come within `timeout`
        (default: the line's) after the request left the wire, or a later gap
        between bytes is longer than `timeout`.
        """
        port = self._require()
        limit = self.settings.timeout if timeout is None else timeout
        deadline = max(time.monotonic(), self._sent_until) + limit
        received = bytearray()
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise ReadTimeout(self._timeout_message(received, limit))
            with self._errors("read from"):
                chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                continue
            received += chunk
            self._quiet_since = time.monotonic()
            if done(bytes(received)):
                return bytes(received)
            if len(received) > MAX_ANSWER_BYTES:
                raise ProtocolError(f"{self.settings.url}: no complete answer in {len(received)} bytes")
            deadline = self._quiet_since + limit

    def exchange(self, frame: bytes, done: Done, timeout: float | None = None, *, pause: float | None = None) -> bytes:
        """`send` the request, then `receive` its answer."""
        self.send(frame, pause=pause)
        return self.receive(done, timeout)

    def _require(self) -> Any:
        if self._port is None:
            raise ConnectError(f"serial line {self.settings.url} is not open")
        return self._port

    def _timeout_message(self, received: bytearray, limit: float) -> str:
        url = self.settings.url
        if not received:
            return f"{url}: no answer within {limit:g} s"
        shown = bytes(received[:24]).hex(" ").upper() + (" ..." if len(received) > 24 else "")
        return f"{url}: answer cut short: {len(received)} bytes ({shown}), then {limit:g} s of silence"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise ConnectError(f"cannot {action} serial line {self.settings.url}: {exc}") from exc


class SerialLineDriver(PollDriver):
    """A poll driver on one blocking `SerialLine`: every call runs in a worker thread, one at a time,
    so the line blocks and the event loop does not."""

    serial_line: ClassVar[bool] = True

    def __init__(self, bus: BusConfig, settings: LineSettings, *, tz: tzinfo = UTC) -> None:
        super().__init__(bus, tz=tz)
        self.line = SerialLine(settings)
        self._lock = threading.Lock()  # held by `read_sync` for a whole poll

    async def open(self) -> None:
        """Open the line; raise `ConnectError` when it cannot be opened."""
        await asyncio.to_thread(self._locked, self.line.open)

    async def read(self, meter: MeterConfig) -> MeterValues:
        """Read one meter in a worker thread."""
        return await asyncio.to_thread(self.read_sync, meter)

    async def close(self) -> None:
        """Close the line; never raises."""
        await asyncio.to_thread(self._locked, self.line.close)

    @abc.abstractmethod
    def read_sync(self, meter: MeterConfig) -> MeterValues:
        """The blocking poll of one meter."""

    def _locked(self, action: Callable[[], None]) -> None:
        with self._lock:
            action()
