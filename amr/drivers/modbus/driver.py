"""Modbus TCP and Modbus RTU poll drivers on pymodbus's asyncio clients.

A meter's registers are its built-in ``profile`` and/or its own ``registers``
(which override the profile's entry for the same channel and tariff); `plan_reads`
joins them into as few requests as possible and each block is decoded to exact
Wh/varh by `amr.protocols.modbus_map`. The unit id is the meter's ``address``.

- ``modbus-tcp``, bus ``url = "tcp://host:502"``: a connection and a lock per device
  (pymodbus cannot pipeline requests on one connection), devices polled at once
  (``serial_line = False``). ``address = "host:port/unit"`` puts a meter behind its
  own gateway; a plain number is a unit id at the bus's host.
- ``modbus-rtu``, bus ``url`` a serial port (``/dev/ttyUSB0``, a pty) or an RS-485
  converter in raw TCP mode (``socket://host:port``, RTU framing over TCP). One
  transaction at a time, ``frame_pause`` (at least the 3.5-character gap) between.

Each block is read once (retries are the collector's), with ``meter.timeout or
bus.timeout`` applied here (opening a connection gets at least `CONNECT_FLOOR`):
no bytes back → `ReadTimeout`; bytes but no valid frame
(bad CRC, garbled MBAP header, cut short) → `ProtocolError`; an exception response
→ `DeviceError` naming the code; connection not opened or lost → `ConnectError`.
A failed block goes to `MeterValues.errors`; a read raises only when no block was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import ClassVar
from urllib.parse import urlsplit

import serial
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Values
from amr.drivers.base import MeterValues, PollDriver
from amr.drivers.modbus.errors import ILLEGAL_DATA_ADDRESS, ModbusExceptionError
from amr.drivers.modbus.settings import ModbusBusSettings, ModbusMeterSettings, ModbusRtuBusSettings
from amr.drivers.modbus.spec import RTU_UNITS, TCP_UNITS, tcp_target, unit_id
from amr.drivers.quality import QualitySample
from amr.drivers.serial_line import frame_pause, rtu_gap
from amr.errors import ConfigError, ConnectError, DriverError, ProtocolError, ReadTimeout
from amr.protocols.crc import crc16_modbus
from amr.protocols.modbus_map import (
    DEFAULT_MAX_GAP,
    PROFILES,
    ReadBlock,
    RegisterKey,
    RegisterMap,
    RegisterSpec,
    register_key,
    register_spec,
)

_LIBRARY_TIMEOUT = 3600.0  # pymodbus's own timer is never the one that fires
CONNECT_FLOOR = 1.0  # s: opening a connection gets at least this, however short the read timeout


def register_map(meter: MeterConfig, max_registers: int) -> RegisterMap:
    """The register map of `meter`: its profile, overridden and extended by its own registers."""
    own = ModbusMeterSettings.of(meter)
    known = PROFILES.get(own.profile) if own.profile is not None else None
    plain = not own.registers and own.max_gap is None
    if known is not None and plain and known.max_registers <= max_registers:
        return known  # the built-in map itself, shared (with its read plan) by every meter of the profile
    registers: dict[RegisterKey, RegisterSpec] = {}
    max_gap = DEFAULT_MAX_GAP
    if known is not None:
        registers.update(known.registers)
        max_registers, max_gap = min(max_registers, known.max_registers), known.max_gap
    if own.max_gap is not None:
        max_gap = own.max_gap
    try:
        entries = [dict(r) for r in own.registers]  # written as the catalogue's entries
        registers.update({register_key(entry): register_spec(entry) for entry in entries})
        if not registers:
            raise ValueError("give a profile or registers")
        return RegisterMap(meter.serial, registers, max_registers=max_registers, max_gap=max_gap)
    except ValueError as exc:
        raise ConfigError(f"meter {meter.serial}: register map: {exc}") from None


def _unit_id(address: int | str | None, units: tuple[int, int], serial_no: str) -> int:
    try:
        return unit_id(address, units)
    except ValueError as exc:
        raise ConfigError(f"meter {serial_no}: address: {exc}") from None


_Factory = Callable[["_Link"], ModbusBaseClient]
_Plan = tuple[RegisterMap, list[ReadBlock], "_Link", int]  # a meter's map, its reads, its link, its unit id


class _Link:
    """One pymodbus client: its lock, its connection and a watch over the transaction in flight.

    The watch is a deadline timer and pymodbus's trace hooks; either ends the transaction by
    cancelling the reading task, with the reason kept in `_failure`. A deadline reached while
    an answer that already arrived waits its turn in the event loop lets that answer through:
    on a busy loop the answer is counted, not turned into a timeout.
    """

    def __init__(self, where: str, rtu: bool, make: _Factory, pause: float) -> None:
        self.where, self.rtu, self._make, self._pause = where, rtu, make, pause
        self.lock = asyncio.Lock()
        self._client: ModbusBaseClient | None = None
        self._reader: asyncio.Task[object] | None = None  # the task waiting for the answer
        self._transaction = 0  # counts transactions: a late verdict on an earlier one is ignored
        self._failure: DriverError | None = None
        self._expect = (0, 0)  # unit, function of the request in flight
        self._received = 0
        self._idle_since = 0.0

    async def open(self, timeout: float) -> ModbusBaseClient:
        """The connected client; `ConnectError` when it cannot be opened within `timeout`
        (at least `CONNECT_FLOOR`: a TCP handshake or a port's open is not an answer's wait)."""
        timeout = max(timeout, CONNECT_FLOOR)
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        reason = "no such port, refused or unreachable"
        try:
            self._client = client = self._make(self)
            async with asyncio.timeout(timeout):
                if await client.connect():
                    return client
        except (TimeoutError, OSError, ValueError, ModbusException) as exc:
            reason = str(exc) or f"no connection within {timeout:g} s"
        self.close()
        raise ConnectError(f"cannot open {self.where}: {reason}")

    def close(self) -> None:
        """Close the client; never raises."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus hook with the bytes received so far: a garbled answer ends the transaction."""
        if not sending and self._reader is not None:
            self._received = max(self._received, len(data))
            if problem := self._rtu_problem(data) if self.rtu else self._mbap_problem(data):
                self._fail(ProtocolError(f"{self.where}: {problem}"))
        return data

    def trace_connect(self, connected: bool) -> None:
        """pymodbus hook: a lost connection ends the transaction in flight."""
        if not connected:
            self._fail(ConnectError(f"{self.where}: connection lost"))

    def _fail(self, error: DriverError, transaction: int | None = None) -> None:
        """End `transaction` (default: the one in flight) with `error`, once."""
        reader = self._reader
        if reader is None or transaction not in (None, self._transaction) or self._failure is not None:
            return
        self._failure = error
        reader.cancel()

    def _expire(self, transaction: int, unit: int, timeout: float, hops: int = 3) -> None:
        # Timers run after the I/O callbacks of their loop iteration. When bytes have come in, the
        # answer may be complete with its hand-over to the reader (a few callbacks) still queued:
        # the verdict waits behind them, so an answer that came in time is never a timeout.
        if self._received and hops:
            asyncio.get_running_loop().call_soon(self._expire, transaction, unit, timeout, hops - 1)
        else:
            self._fail(self._no_answer(unit, timeout), transaction)

    def _rtu_problem(self, data: bytes) -> str | None:
        unit, function = self._expect
        if len(data) < 3 or data[0] != unit or data[1] not in (function, function | 0x80):
            return None  # not (yet) our answer; pymodbus skips other units' frames
        size = 5 if data[1] & 0x80 else 5 + data[2]  # unit, fc, code | byte count + data, CRC
        bad = len(data) >= size and crc16_modbus(data[:size]) != 0
        return f"answer of unit {unit} has a bad CRC" if bad else None

    @staticmethod
    def _mbap_problem(data: bytes) -> str | None:
        # MBAP header: transaction id, protocol id (always 0), length (unit + PDU, 2..254), unit
        if len(data) >= 7 and (data[2:4] != b"\0\0" or not 2 <= int.from_bytes(data[4:6], "big") <= 254):
            return "garbled MBAP header (protocol identifier or length)"
        return None

    def _no_answer(self, unit: int, timeout: float) -> DriverError:
        if self._received:
            return ProtocolError(f"{self.where}: {self._received} bytes from unit {unit}, no valid frame")
        return ReadTimeout(f"{self.where}: no answer from unit {unit} within {timeout:g} s")

    async def read(self, block: ReadBlock, unit: int, timeout: float) -> list[int]:
        """The registers of one block, in one attempt."""
        client = await self.open(timeout)
        loop = asyncio.get_running_loop()
        if self.rtu:
            await asyncio.sleep(max(0.0, self._idle_since + self._pause - loop.time()))
        reader = asyncio.current_task()
        assert reader is not None
        self._expect, self._received, self._failure, self._reader = (unit, block.function), 0, None, reader
        self._transaction += 1
        deadline = loop.call_later(timeout, self._expire, self._transaction, unit, timeout)
        call = client.read_holding_registers if block.function == 3 else client.read_input_registers
        try:
            response = await call(block.address, count=block.count, device_id=unit)
        except asyncio.CancelledError:
            failure = self._failure
            if failure is None or reader.uncancel() > 0:
                raise  # not ours: the collector is stopping
            self._failed(client)
            raise failure from None
        except ConnectionException as exc:
            self._failed(client)
            raise ConnectError(f"{self.where}: {exc}") from None
        except ModbusException as exc:
            self._failed(client)
            raise ProtocolError(f"{self.where}: {exc}") from None
        finally:
            deadline.cancel()
            self._reader, self._idle_since = None, loop.time()
        if self._failure is not None:  # the deadline fired while the answer was being taken in
            reader.uncancel()
        if response.isError():
            raise ModbusExceptionError(self.where, unit, response.exception_code)
        registers = list(response.registers)
        if response.function_code != block.function or len(registers) != block.count:
            raise ProtocolError(
                f"{self.where}: asked fc {block.function} for {block.count} registers, "
                f"got fc {response.function_code} with {len(registers)}"
            )
        return registers

    def _failed(self, client: ModbusBaseClient) -> None:
        if not self.rtu or not client.connected:
            self.close()  # a TCP stream out of step is reopened on the next read


class _ModbusDriver(PollDriver):
    source: ClassVar[str] = "askue:modbus"
    _units: ClassVar[tuple[int, int]] = RTU_UNITS

    def __init__(self, bus: BusConfig, *, tz: tzinfo = UTC) -> None:
        super().__init__(bus, tz=tz)
        self.settings = ModbusBusSettings.of(bus)
        self._links: dict[str, _Link] = {}
        self._plans: dict[str, tuple[MeterConfig, _Plan]] = {}
        self._absent: dict[str, list[str]] = {}  # serial → reads of registers the meter lacks

    def _link(self, target: str) -> _Link:
        raise NotImplementedError

    def _target(self, meter: MeterConfig) -> tuple[str, int]:
        return self.bus.url, _unit_id(meter.address, self._units, meter.serial)

    async def open(self) -> None:
        """Open the bus's own connection or port."""
        await self._link(self.bus.url).open(self.bus.timeout.total_seconds())

    async def close(self) -> None:
        """Close every connection; never raises."""
        for link in self._links.values():
            link.close()
        self._links.clear()
        self._plans.clear()
        self._absent.clear()

    def _prepared(self, meter: MeterConfig) -> _Plan:
        """The meter's register map, its reads, its link and unit id: worked out on its first read."""
        known = self._plans.get(meter.serial)
        if known is not None and (known[0] is meter or known[0] == meter):
            return known[1]
        regmap = register_map(meter, self.settings.max_registers)
        target, unit = self._target(meter)
        plan = (regmap, regmap.plan(), self._link(target), unit)
        self._plans[meter.serial] = (meter, plan)
        return plan

    async def read(self, meter: MeterConfig) -> MeterValues:
        """Read every block of the meter's map; raise only when none could be read.

        A block of several registers answered with exception 2 (illegal data address: a meter of
        the series that lacks some of the profile's registers, e.g. an iEM3150 without export and
        reactive energy) is read again register by register; what exists is kept, and the meter's
        plan keeps the split (without the registers it lacks) for the next polls.
        """
        polled_at = datetime.now(UTC)
        regmap, blocks, link, unit = self._prepared(meter)
        timeout = (meter.timeout or self.bus.timeout).total_seconds()
        tariffs: dict[int, Values] = {}
        errors: dict[str, str] = {}
        first: DriverError | None = None
        replan: list[ReadBlock] = []
        split = False
        async with link.lock:
            for index, block in enumerate(blocks):
                try:
                    self._take(regmap, block, await link.read(block, unit, timeout), tariffs)
                    replan.append(block)
                except ModbusExceptionError as exc:
                    if exc.exception_code != ILLEGAL_DATA_ADDRESS or len(block.specs) < 2:
                        errors[_name(block)], first = str(exc), first or exc
                        replan.append(block)
                        continue
                    split = True
                    for piece in _pieces(block):
                        try:
                            self._take(regmap, piece, await link.read(piece, unit, timeout), tariffs)
                            replan.append(piece)
                        except DriverError as inner:
                            errors[_name(piece)], first = str(inner), first or inner
                            if inner.code != "modbus.illegal_address":
                                replan.append(piece)
                except DriverError as exc:
                    errors[_name(block)], first = str(exc), first or exc
                    replan.append(block)
                    if isinstance(exc, ConnectError | ReadTimeout) and not tariffs:
                        raise  # the meter is not there: spare the bus the other blocks' timeouts
                    if isinstance(exc, ConnectError):
                        errors.update({_name(rest): f"not read: {exc}" for rest in blocks[index + 1 :]})
                        break
        if split and tariffs:
            kept = {spec for b in replan for spec in b.specs}
            absent = sorted(_name(p) for b in blocks for p in _pieces(b) if p.specs[0] not in kept)
            self._plans[meter.serial] = (meter, (regmap, replan, link, unit))
            self._absent[meter.serial] = absent
        if not tariffs and first is not None:
            raise first
        raw: dict[str, object] = {"unit": unit, "requests": len(blocks)}
        if lacking := self._absent.get(meter.serial):
            raw["absent"] = lacking  # registers the meter lacks: no longer asked for
        return MeterValues(meter.serial, tariffs, polled_at, errors=errors, raw=raw)

    def has_quality(self, meter: MeterConfig) -> bool:
        """True for meters whose map has instantaneous values (`amr.drivers.modbus.quality`)."""
        from amr.drivers.modbus import quality

        return bool(quality.quantities_of(meter))

    async def read_quality(self, meter: MeterConfig) -> QualitySample:
        """Instantaneous values (`amr.drivers.quality.QualityReader`): see `amr.drivers.modbus.quality`."""
        from amr.drivers.modbus import quality

        return await quality.read(self, meter)

    @staticmethod
    def _take(regmap: RegisterMap, block: ReadBlock, registers: list[int], tariffs: dict[int, Values]) -> None:
        for tariff, values in regmap.decode_reads({block: registers}).items():
            tariffs.setdefault(tariff, {}).update(values)


def _pieces(block: ReadBlock) -> list[ReadBlock]:
    """One read per register of `block`."""
    return [ReadBlock(s.function, s.protocol_address, s.count, (s,)) for s in block.specs]


def _name(block: ReadBlock) -> str:
    return f"fc{block.function}:{block.address}+{block.count}"


class ModbusTcpDriver(_ModbusDriver):
    """Modbus TCP: ``tcp://host:port``; a client and a lock per device, devices polled concurrently."""

    kind: ClassVar[str] = "modbus-tcp"
    serial_line: ClassVar[bool] = False
    _units: ClassVar[tuple[int, int]] = TCP_UNITS

    def _target(self, meter: MeterConfig) -> tuple[str, int]:
        try:
            host_port, unit = tcp_target(meter.address)
        except ValueError as exc:
            raise ConfigError(f"meter {meter.serial}: address: {exc}") from None
        return host_port or self.bus.url, unit

    def _link(self, target: str) -> _Link:
        parts = urlsplit(target if "//" in target else f"tcp://{target}")
        try:
            host, port = parts.hostname or "", parts.port or 502
        except ValueError:
            raise ConfigError(f"bus {self.bus.name}: {target!r} is not tcp://host:port") from None
        key = f"tcp://{host}:{port}"
        if key not in self._links:
            self._links[key] = _Link(key, False, _tcp_client(host, port, FramerType.SOCKET), 0.0)
        return self._links[key]


class ModbusRtuDriver(_ModbusDriver):
    """Modbus RTU on a serial line, a pty or an RS-485 converter (``socket://host:port``)."""

    kind: ClassVar[str] = "modbus-rtu"
    serial_line: ClassVar[bool] = True

    def _link(self, target: str) -> _Link:
        if target not in self._links:
            line, parts = ModbusRtuBusSettings.of(self.bus), urlsplit(target)
            pause = max(frame_pause(line), rtu_gap(line.baudrate))
            if parts.scheme == "socket":
                make = _tcp_client(parts.hostname or "", parts.port or 502, FramerType.RTU)
            else:
                make = self._serial_client
            self._links[target] = _Link(target, True, make, pause)
        return self._links[target]

    def _serial_client(self, link: _Link) -> ModbusBaseClient:
        url, line = self.bus.url, ModbusRtuBusSettings.of(self.bus)
        if type(serial.serial_for_url(url, do_not_open=True)).fileno is io.RawIOBase.fileno:
            # pymodbus's asyncio serial transport waits on a file descriptor (rfc2217:// has none)
            raise ConnectError(f"{url}: this kind of port has no file descriptor; use socket://host:port")
        return AsyncModbusSerialClient(
            url, baudrate=line.baudrate, bytesize=line.bytesize, parity=line.parity, stopbits=line.stopbits,
            timeout=_LIBRARY_TIMEOUT, retries=0, reconnect_delay=0,
            trace_packet=link.trace_packet, trace_connect=link.trace_connect,
        )


def _tcp_client(host: str, port: int, framer: FramerType) -> _Factory:
    def make(link: _Link) -> ModbusBaseClient:
        return AsyncModbusTcpClient(
            host, port=port, framer=framer, timeout=_LIBRARY_TIMEOUT, retries=0, reconnect_delay=0,
            trace_packet=link.trace_packet, trace_connect=link.trace_connect,
        )

    return make
