"""Modbus simulators: many virtual meters behind one TCP port, or on one RTU line (a pty or TCP).

Each `VirtualMeter` answers at its unit id (``meter.address``) with the registers
its register map (a built-in profile of `amr.protocols.modbus_map`, the same the
driver reads with) encodes from ``meter.registers()``, refreshed on every request.
Function codes 3 and 4 are served: mapped registers inside a read are filled in,
unmapped ones read 0, and a read touching no mapped register gets exception 2.

Faults from ``meter.faults``, per request:

==========  ===================================  ==========================================
fault       Modbus TCP                           Modbus RTU (pty / RTU over TCP)
==========  ===================================  ==========================================
silent      no answer, connection stays open     no answer
delay       answer ``delay`` s late              answer ``delay`` s late (line stays busy)
corrupt     MBAP protocol identifier garbled     CRC bytes inverted
exception   exception response with that code    exception response with that code
drop        connection closed, no answer         pty: answer lost; over TCP: connection closed
==========  ===================================  ==========================================

``lower_by_wh``, ``wrap_after`` and ``clock_drift`` act through the model. An unknown
unit id gets exception 11 (gateway target failed to respond) on TCP, silence on RTU.
Requests on one TCP connection, and all requests on an RTU line, are answered one at
a time. A pty or socket carries bytes at once, so an RTU answer is held back by the
line time of request and answer at ``baudrate`` (11 bits a character, each frame
followed by the inter-frame gap). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import tty
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from amr.drivers.serial_line import rtu_gap
from amr.protocols.crc import crc16_modbus, crc_bytes
from amr.protocols.modbus_map import PROFILES, RegisterMap
from amr.protocols.modbus_map.eastron_instant import PROFILES as EASTRON_INSTANT
from simulators.model import VirtualMeter
from simulators.quality import eastron_words
from simulators.serving import LOOPBACK, Connections, Service

Profile = str | RegisterMap  # a built-in profile's name, or a map
Request = tuple[int, int, int, int]  # unit, function, address, count
GATEWAY_TARGET_FAILED = 0x0B  # exception code of a gateway whose target does not answer


def rtu_line_time(request_bytes: int, answer_bytes: int, baudrate: int) -> float:
    """Seconds one RTU transaction takes on the line: both frames at 11 bits a character, two gaps."""
    return (request_bytes + answer_bytes) * 11 / baudrate + 2 * rtu_gap(baudrate)


@dataclass(frozen=True, slots=True)
class _Answer:
    pdu: bytes = b""
    delay: float = 0.0
    corrupt: bool = False
    drop: bool = False


def _exception(function: int, code: int) -> bytes:
    return bytes([function | 0x80, code])


class _Meters:
    """The meters of one port or line by unit id, and the answer each request gets."""

    def __init__(self, meters: Iterable[VirtualMeter], profile: Profile, profiles: Mapping[str, Profile]):
        self.units: dict[int, tuple[VirtualMeter, RegisterMap]] = {}
        self.requests: list[Request] = []
        for meter in meters:
            chosen = profiles.get(meter.serial, profile)
            unit = int(meter.address)
            if unit in self.units:
                raise ValueError(f"unit id {unit} is given to two meters")
            self.units[unit] = (meter, PROFILES[chosen] if isinstance(chosen, str) else chosen)

    def answer(self, unit: int, pdu: bytes, gateway: bool) -> _Answer | None:
        """The answer to one request PDU, faults applied; None for no answer at all."""
        if unit not in self.units:
            return _Answer(_exception(pdu[0], GATEWAY_TARGET_FAILED)) if gateway and pdu else None
        meter, regmap = self.units[unit]
        faults = meter.faults
        if faults.silent:
            return None
        if meter.roll(faults.drop):
            return _Answer(drop=True)
        if faults.exception is not None:
            body = _exception(pdu[0], faults.exception)
        else:
            body = self._read(unit, meter, regmap, pdu)
        return _Answer(body, faults.delay, meter.roll(faults.corrupt))

    def _read(self, unit: int, meter: VirtualMeter, regmap: RegisterMap, pdu: bytes) -> bytes:
        function = pdu[0]
        if function not in (3, 4):
            return _exception(function, 1)  # illegal function
        if len(pdu) != 5:
            return _exception(function, 3)  # illegal data value
        address, count = struct.unpack(">HH", pdu[1:])
        self.requests.append((unit, function, address, count))
        if not 1 <= count <= 125:
            return _exception(function, 3)
        try:
            table = regmap.encode_registers(meter.registers()).get(function, {})
            if function == 4 and regmap.name in EASTRON_INSTANT:  # voltages, currents, powers (simulators.quality)
                table = {**eastron_words(meter, regmap.name), **table}
        except ValueError:
            return _exception(function, 4)  # server device failure
        wanted = range(address, address + count)
        if address + count > 0x10000 or not any(a in table for a in wanted):
            return _exception(function, 2)  # illegal data address
        return bytes([function, 2 * count]) + b"".join(table.get(a, 0).to_bytes(2, "big") for a in wanted)


class _Simulator(Service):
    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        profile: Profile = "eastron-sdm630",
        profiles: Mapping[str, Profile] | None = None,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        if host != LOOPBACK:
            raise ValueError(f"the simulator listens on {LOOPBACK} only; got {host!r}")
        self.meters = _Meters(meters, profile, profiles or {})
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._connections = Connections()

    @property
    def requests(self) -> list[Request]:
        """Read requests served so far: (unit, function, address, count)."""
        return self.meters.requests

    async def start(self) -> None:
        """Start listening on 127.0.0.1; `port` is then the real port."""
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        await self._connections.close(self._server)
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._connections.serving(writer):
            try:
                await self._serve(reader, writer)
            except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
                pass  # stopped, or the client went away; asyncio's stream callback chokes on a cancelled task
            finally:
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class ModbusTcpSimulator(_Simulator):
    """Modbus TCP on one port of 127.0.0.1, each meter at its unit id; the driver opens ``url``."""

    @property
    def url(self) -> str:
        """``tcp://127.0.0.1:port``."""
        return f"tcp://{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            # MBAP header: transaction id, protocol id (0), length of unit id + PDU, unit id
            tid, protocol, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
            if protocol != 0 or not 2 <= length <= 254:
                return  # not Modbus: close
            answer = self.meters.answer(unit, await reader.readexactly(length - 1), gateway=True)
            if answer is None:
                continue
            await asyncio.sleep(answer.delay)
            if answer.drop:
                return
            header = struct.pack(">HHHB", tid, 0xDEAD if answer.corrupt else 0, len(answer.pdu) + 1, unit)
            writer.write(header + answer.pdu)
            await writer.drain()


@contextlib.asynccontextmanager
async def tcp_simulators(
    groups: Iterable[Sequence[VirtualMeter]], *, profile: Profile = "eastron-sdm630"
) -> AsyncIterator[list[ModbusTcpSimulator]]:
    """One `ModbusTcpSimulator` per group of meters, each on its own port, all stopped on exit."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(ModbusTcpSimulator(g, profile=profile)) for g in groups]


def _take_frames(buffer: bytearray) -> list[bytes]:
    """Whole RTU request frames off the front of `buffer`; frames with a bad CRC are ignored."""
    frames = []
    while len(buffer) >= 8:
        function = buffer[1]
        if 1 <= function <= 6:
            size = 8  # unit, function, address, count or value, CRC
        elif function in (15, 16):
            size = 9 + buffer[6]  # unit, function, address, count, byte count, data, CRC
        else:
            buffer.clear()  # unknown framing: wait for the line to go quiet
            break
        if len(buffer) < size:
            break
        frame = bytes(buffer[:size])
        del buffer[:size]
        if crc16_modbus(frame) == 0:
            frames.append(frame)
    return frames


class ModbusRtuSimulator(_Simulator):
    """Modbus RTU on a pty (``transport="pty"``) or framed over TCP (``"tcp"``); the driver opens ``url``."""

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        transport: Literal["pty", "tcp"] = "pty",
        baudrate: int = 9600,
        profile: Profile = "eastron-sdm630",
        profiles: Mapping[str, Profile] | None = None,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        super().__init__(meters, profile=profile, profiles=profiles, host=host, port=port)
        self.transport, self.baudrate = transport, baudrate
        self._pty: tuple[int, int] | None = None
        self._path = ""

    @property
    def url(self) -> str:
        """The pty's slave path, or ``socket://127.0.0.1:port``."""
        return self._path if self.transport == "pty" else f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        """Open the pty, or start listening."""
        if self.transport == "tcp":
            await super().start()
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # the slave end stays open here, so the pty lives between driver sessions
        os.set_blocking(master, False)
        self._pty, self._path = (master, slave), os.ttyname(slave)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        buffer = bytearray()

        def readable() -> None:
            with contextlib.suppress(OSError):
                buffer.extend(os.read(master, 4096))
            for frame in _take_frames(buffer):
                queue.put_nowait(frame)

        async def line() -> None:
            while True:
                await self._transact(await queue.get(), lambda data: os.write(master, data))

        asyncio.get_running_loop().add_reader(master, readable)
        self._connections.spawn(line())

    async def stop(self) -> None:
        """Stop serving; close the pty."""
        if self._pty is not None:
            asyncio.get_running_loop().remove_reader(self._pty[0])
        await super().stop()
        if self._pty is not None:
            for fd in self._pty:
                os.close(fd)
            self._pty = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while data := await reader.read(512):
            buffer.extend(data)
            for frame in _take_frames(buffer):
                if not await self._transact(frame, writer.write):
                    return

    async def _transact(self, frame: bytes, write: Callable[[bytes], object]) -> bool:
        """Answer one request frame; False when the connection is to be dropped."""
        unit = frame[0]
        answer = self.meters.answer(unit, frame[1:-2], gateway=False) if unit else None  # 0: broadcast
        if answer is None:
            return True
        if answer.drop:
            return self.transport == "pty"
        body = bytes([unit]) + answer.pdu
        crc = crc_bytes(body)
        if answer.corrupt:
            crc = bytes(b ^ 0xFF for b in crc)
        await asyncio.sleep(rtu_line_time(len(frame), len(body) + 2, self.baudrate) + answer.delay)
        write(body + crc)
        return True
