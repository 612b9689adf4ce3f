"""DLMS/COSEM (СПОДЭС) poll drivers: A+, A-, R+, R- by tariff and the clock of each meter.

- ``dlms-tcp``, bus ``url = "tcp://host:4059"``: the TCP wrapper (``transport = "wrapper"``)
  or HDLC over a plain TCP connection (``transport = "hdlc"``); a connection per meter
  (``host`` in the meter's table for meters with their own address), meters polled at once.
- ``dlms-hdlc``, bus ``url`` a serial port or ``socket://host:port`` (an RS-485 converter):
  HDLC on one `SerialLine`, one meter at a time.

A poll opens the link (TCP connect / SNRM), associates (AARQ/AARE, with the HLS-GMAC
exchange when configured), reads each register's scaler-unit once (kept for later polls)
and value, reads the clock, then releases (RLRQ) and closes (DISC, socket close). Every
step has the meter's timeout. A register the meter lacks or refuses is named in
`MeterValues.errors` and the others are kept; a poll raises only when nothing was read.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from functools import partial
from typing import ClassVar, TypeVar
from urllib.parse import urlsplit

from amr.config import BusConfig, MeterConfig
from amr.core.domain import CHANNELS, Channel, Values
from amr.drivers.base import MeterValues, PollDriver
from amr.drivers.dlms import errors, values
from amr.drivers.dlms.clock import DlmsClock
from amr.drivers.dlms.event_logs import DlmsJournals
from amr.drivers.dlms.links import HdlcLink, WrapperLink
from amr.drivers.dlms.objects import CosemObject, read_object_list
from amr.drivers.dlms.ports import Port, TcpPort
from amr.drivers.dlms.profile import DlmsProfiles
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import (
    CLOCK,
    CLOCK_OBIS,
    DlmsBusTable,
    DlmsHdlcBusSettings,
    DlmsTcpBusSettings,
    MeterLink,
    default_obis,
    meter_link,
    register_key,
)
from amr.drivers.dlms.workers import Workers
from amr.drivers.quality import QualitySample
from amr.drivers.relay import RelayAction, RelayState
from amr.drivers.serial_line import LineSettings, SerialLine
from amr.errors import ConfigError, ConnectError, DriverError, ReadTimeout
from amr.protocols import dlms_hdlc as hdlc

REGISTER, CLOCK_CLASS = 3, 8
T = TypeVar("T")


def _host_port(text: str, default_port: int = 4059) -> tuple[str, int]:
    parts = urlsplit(text if "//" in text else f"tcp://{text}")
    if not parts.hostname:
        raise ConfigError(f"{text!r} is not host:port")
    return parts.hostname, parts.port or default_port


class _DlmsDriver(PollDriver, DlmsProfiles, DlmsClock, DlmsJournals):
    source: ClassVar[str] = "askue:dlms"

    transport: ClassVar[str]  # what a bus without ``transport`` in its table speaks
    settings_model: ClassVar[type[DlmsTcpBusSettings | DlmsHdlcBusSettings]]

    def __init__(self, bus: BusConfig, *, tz: tzinfo = UTC) -> None:
        """A driver for `bus` (its ``[buses.dlms]`` table read through its kind's settings model)."""
        super().__init__(bus, tz=tz)
        own = self.settings_model.of(bus)
        self.settings: DlmsBusTable = own.dlms
        self._scalers: dict[tuple[str, str], values.ScalerUnit] = {}  # (serial, OBIS) → scaler-unit
        self._counters: dict[str, int] = {}  # serial → next client invocation counter (ciphered APDUs)
        self.workers = Workers(1 if self.serial_line else own.reads_at_once, bus.name)  # a line: one at a time

    def link_of(self, meter: MeterConfig) -> MeterLink:
        """The meter's merged settings (`ConfigError` naming the key when they are wrong)."""
        return meter_link(self.settings, meter)

    def _timeout(self, meter: MeterConfig) -> float:
        return (meter.timeout or self.bus.timeout).total_seconds()

    def _hdlc(self, port: Port, link: MeterLink, timeout: float) -> HdlcLink:
        server = hdlc.server_address(link.meter.logical_device, link.meter.physical_address, link.address_size)
        return HdlcLink(port, hdlc.client_address(link.security.client), server, timeout=timeout,
                        max_info=self.settings.max_info_length, window=self.settings.window)

    def poll(self, port: Port, link: MeterLink, meter: MeterConfig, timeout: float) -> MeterValues:
        """One meter's poll over an open `port` (blocking)."""
        polled_at = datetime.now(UTC)
        started = time.monotonic()
        result = self._associated(port, link, meter, timeout,
                                  lambda session: self._read_all(session, link, meter, polled_at))
        result.raw["seconds"] = round(time.monotonic() - started, 3)
        return result

    def _associated(self, port: Port, link: MeterLink, meter: MeterConfig, timeout: float,
                    work: Callable[[Session], T]) -> T:
        """`work` inside an association over an open `port`: link opened, associated, released, closed."""
        data_link: HdlcLink | WrapperLink
        if (self.settings.transport or self.transport) == "wrapper" and not isinstance(port, SerialLine):
            data_link = WrapperLink(port, link.security.client, link.meter.logical_device, timeout)
        else:
            data_link = self._hdlc(port, link, timeout)
        session = Session(data_link, link.security, max_pdu_size=self.settings.max_pdu_size,
                          counter=self._counters.get(meter.serial, 0))
        try:
            data_link.open()
            session.associate()
            result = work(session)
            session.release()
        finally:
            self._counters[meter.serial] = session.counter
            data_link.close()
        return result

    async def read(self, meter: MeterConfig) -> MeterValues:
        """Poll one meter (in one of the bus's own threads)."""
        return await self.workers.run(self._on_port, meter, self.poll)

    async def objects(self, meter: MeterConfig) -> list[CosemObject]:
        """The meter's object list (what it holds, by class and OBIS), read with GET blocks."""
        return await self.workers.run(self._on_port, meter, self._objects)

    def _objects(self, port: Port, link: MeterLink, meter: MeterConfig, timeout: float) -> list[CosemObject]:
        return self._associated(port, link, meter, timeout, read_object_list)

    @abc.abstractmethod
    def _on_port(self, meter: MeterConfig, work: Callable[[Port, MeterLink, MeterConfig, float], T]) -> T:
        """`work` with the meter's port open (blocking)."""

    def _read_all(self, session: Session, link: MeterLink, meter: MeterConfig, polled_at: datetime) -> MeterValues:
        tariffs: dict[int, Values] = {}
        problems: dict[str, str] = {}
        codes: dict[str, str] = {}
        first: DriverError | None = None
        for tariff in range(meter.tariffs + 1 if meter.tariffs > 1 else 1):
            for channel in CHANNELS:
                key = register_key(channel, tariff)
                obis = link.obis(key, default_obis(channel, tariff))
                try:
                    energy = self._register(session, meter.serial, channel, obis)
                except (ConnectError, ReadTimeout):
                    raise  # the link is gone: nothing more can be read in this poll
                except DriverError as exc:
                    problems[key], codes[key], first = str(exc), errors.code_of(exc) or "", first or exc
                    continue
                tariffs.setdefault(tariff, {})[channel] = energy
        meter_time = None
        try:
            meter_time = values.clock(session.get(CLOCK_CLASS, link.obis(CLOCK, CLOCK_OBIS), 2), self.tz)
        except (ConnectError, ReadTimeout):
            if not tariffs:
                raise
            problems[CLOCK] = "the link was lost before the clock was read"
        except DriverError as exc:
            problems[CLOCK], codes[CLOCK] = str(exc), errors.code_of(exc) or ""
        if not tariffs and first is not None:
            raise first
        raw: dict[str, object] = {"client": link.security.client, "authentication": link.security.authentication}
        if codes:
            raw["codes"] = codes
        return MeterValues(meter.serial, tariffs, polled_at, meter_time, problems, raw)

    async def relay(self, meter: MeterConfig, action: RelayAction) -> RelayState:
        """The relay (`amr.drivers.relay.RelaySwitch`): see `amr.drivers.dlms.relay`."""
        from amr.drivers.dlms import operations, relay

        return await self.workers.run(operations.in_session, self, meter, partial(relay.operate, what=action))

    def has_quality(self, meter: MeterConfig) -> bool:
        """Every СПОДЭС meter has instantaneous values (those it lacks are named in the sample)."""
        return True

    async def read_quality(self, meter: MeterConfig) -> QualitySample:
        """Instantaneous values (`amr.drivers.quality.QualityReader`): see `amr.drivers.dlms.quality`."""
        from amr.drivers.dlms import operations, quality

        return await self.workers.run(operations.in_session, self, meter,
                                      partial(quality.read, scalers=self._scalers))

    def _register(self, session: Session, serial: str, channel: Channel, obis: str) -> int:
        scaler = self._scalers.get((serial, obis))
        if scaler is None:
            scaler = values.ScalerUnit.from_bytes(session.get(REGISTER, obis, 3))
            self._scalers[(serial, obis)] = scaler
        return scaler.energy(channel, session.get(REGISTER, obis, 2))


class DlmsTcpDriver(_DlmsDriver):
    """``dlms-tcp``: a TCP connection per poll to the bus's host or the meter's own ``host``."""

    kind: ClassVar[str] = "dlms-tcp"
    serial_line: ClassVar[bool] = False
    transport: ClassVar[str] = "wrapper"
    settings_model = DlmsTcpBusSettings

    async def open(self) -> None:
        """Nothing to open ahead: each poll connects to its meter."""
        _host_port(self.bus.url)

    def _on_port(self, meter: MeterConfig, work: Callable[[Port, MeterLink, MeterConfig, float], T]) -> T:
        """Connect, `work`, disconnect."""
        link = self.link_of(meter)
        host, port_no = _host_port(link.meter.host or self.bus.url)
        timeout = self._timeout(meter)
        port = TcpPort(host, port_no, timeout)
        try:
            port.open()
            return work(port, link, meter, timeout)
        finally:
            port.close()

    async def close(self) -> None:
        """Stop the bus's threads; no connection is held between polls."""
        self.workers.close()


class DlmsHdlcDriver(_DlmsDriver):
    """``dlms-hdlc``: HDLC on a serial line or ``socket://`` converter, one meter at a time."""

    kind: ClassVar[str] = "dlms-hdlc"
    serial_line: ClassVar[bool] = True
    transport: ClassVar[str] = "hdlc"
    settings_model = DlmsHdlcBusSettings

    def __init__(self, bus: BusConfig, *, tz: tzinfo = UTC) -> None:
        """A driver for the serial `bus`."""
        super().__init__(bus, tz=tz)
        self.line = SerialLine(LineSettings.from_bus(bus))
        self._lock = threading.Lock()  # one transaction at a time on the line

    async def open(self) -> None:
        """Open the line; `ConnectError` (code ``connect``) when it cannot be opened."""
        await self.workers.run(self._locked_open)

    def _locked_open(self) -> None:
        with self._lock:
            self.line.open()

    def _on_port(self, meter: MeterConfig, work: Callable[[Port, MeterLink, MeterConfig, float], T]) -> T:
        """`work` holding the line (reopened if it was lost); its own errors keep their codes
        (``timeout``, ``connect``: the same as over TCP)."""
        link = self.link_of(meter)
        with self._lock:
            self.line.open()
            return work(self.line, link, meter, self._timeout(meter))

    async def close(self) -> None:
        """Close the line and stop the bus's thread; never raises."""
        await self.workers.run(self.line.close)
        self.workers.close()
