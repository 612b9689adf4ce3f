"""IEC 62056-21 mode C over a serial line: sign on, switch speed, take the readout (or read registers).

Without a password (data readout, option select Y = 0)::

    -> /?address!CR LF                        at the initial speed (300 baud, 7E1)
    <- /XXXZident CR LF                       Z: the highest speed the meter offers
    -> ACK 0 Z 0 CR LF                        after the meter's reaction time; then both switch to Z
    <- STX 1.8.0(001234.567*kWh) ... ! CR LF ETX BCC

With a meter ``password`` (`IecMeterSettings`) (programming mode, option select Y = 1)::

    <- SOH P0 STX (seed) ETX BCC              the meter asks for a password
    -> SOH P1 STX (password) ETX BCC
    <- ACK                                    NAK or a break SOH B0 ETX BCC: access denied
    -> SOH R1 STX 1.8.0() ETX BCC             one read command per register ...
    <- STX 1.8.0(001234.567*kWh) ETX BCC      ... or STX (error text) ETX BCC
    -> SOH B0 ETX BCC                         break: the meter returns to its initial state

The initial speed is 300 baud 7E1 as the standard says, unless the bus sets
``baudrate`` / ``bytesize`` / ``parity`` explicitly (some RS-485 installations
start faster): `BusConfig` defaults to 9600 8N1 for every serial kind, and only
an explicitly written key is taken to mean the IEC line differs from the standard.
Over ``socket://`` the converter's speed is fixed, so the driver asks the meter
to stay at the initial speed instead of switching. ``baud_switch = false`` on the
bus says the same for any line: the driver signs on at the bus's ``baudrate``
(written or not) and the option select names that speed, so the meter stays
there (meters on RS-485 lines and converters set to 9600 work this way; at 300
baud a readout takes seconds a meter).

OBIS 1.8.x/2.8.x/3.8.x/4.8.x (x = 0 total, 1..4 tariffs) become A+/A-/R+/R- in
exact Wh/varh; 0.9.1 (time hhmmss) and 0.9.2 (date YYMMDD) become ``meter_time``
in the meter's time zone (the driver's `tz`, by default UTC). A register that
cannot be read is named in ``MeterValues.errors``; the others are kept.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel, Source
from amr.core.events import MeterEvent
from amr.drivers.base import MeterValues
from amr.drivers.clock import ClockReading
from amr.drivers.iec62056_21 import clock, journal
from amr.drivers.iec62056_21.profile import IecProfiles
from amr.drivers.iec62056_21.settings import IecBusSettings, IecMeterSettings
from amr.drivers.serial_line import LineSettings, SerialLineDriver
from amr.errors import ConfigError, ConnectError, DeviceError, DriverError, ProtocolError, ReadTimeout
from amr.protocols import iec62056_21 as iec
from amr.protocols import obis

STANDARD_INITIAL_BAUDRATE = 300  # mode C always signs on at 300 baud
_TIME = re.compile(r"(\d\d):?(\d\d):?(\d\d)")  # 0.9.1: hhmmss
_DATE = re.compile(r"(\d\d|\d{4})-?(\d\d)-?(\d\d)")  # 0.9.2: YYMMDD (some meters YYYYMMDD)


class BlockWaiter:
    """A completion predicate for `SerialLine.receive`: one block (or a lone ACK/NAK) has arrived."""

    def __init__(self) -> None:
        """Wait for the next block."""
        self._receiver = iec.BlockReceiver()
        self._seen = 0
        self.block: bytes | None = None

    def __call__(self, received: bytes) -> bool:
        """True once `received` holds a whole block, kept in `block`."""
        self.block = self._receiver.feed(received[self._seen :])
        self._seen = len(received)
        return self.block is not None


def _line_ended(received: bytes) -> bool:
    return received.endswith(b"\r\n")


def meter_clock(data_sets: Iterable[iec.DataSet], tz: tzinfo = UTC) -> datetime | None:
    """The meter's clock (UTC) from 0.9.1 time and 0.9.2 date, local in `tz`; None unless both are sent."""
    parts: dict[str, str] = {}
    for data_set in data_sets:
        code = obis.parse_obis(data_set.address)
        if code is None or (code.c, code.d) != ("0", "9") or code.e not in ("1", "2"):
            continue
        if code.a in (None, 0, 1) and code.f in (None, obis.CURRENT):
            parts[code.e] = data_set.value.strip()
    if "1" not in parts or "2" not in parts:
        return None
    time_match, date_match = _TIME.fullmatch(parts["1"]), _DATE.fullmatch(parts["2"])
    if time_match is None or date_match is None:
        raise ProtocolError(f"cannot read the meter clock: 0.9.2({parts['2']}) 0.9.1({parts['1']})")
    year, month, day = (int(g) for g in date_match.groups())
    hour, minute, second = (int(g) for g in time_match.groups())
    try:
        local = datetime(year + 2000 if year < 100 else year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as exc:
        shown = f"0.9.2({parts['2']}) 0.9.1({parts['1']})"
        raise ProtocolError(f"meter clock {shown} is not a date: {exc}") from None
    return local.astimezone(UTC)


def values_from_data_sets(
    data_sets: Iterable[iec.DataSet],
    *,
    serial: str,
    polled_at: datetime,
    tz: tzinfo = UTC,
    errors: dict[str, str] | None = None,
    raw: dict[str, object] | None = None,
) -> MeterValues:
    """`MeterValues` from the data sets of a readout or of register reads.

    Each energy register is converted on its own, so one bad register (no
    unit, a unit that does not fit, two different values) is recorded in
    ``errors`` under its address and the rest are kept.
    """
    sets = list(data_sets)
    problems = dict(errors or {})
    found = iec.energy_readings(sets, errors=problems)
    try:
        meter_time = meter_clock(sets, tz)
    except ProtocolError as exc:
        problems["clock"], meter_time = str(exc), None
    return MeterValues(serial, found, polled_at, meter_time, problems, dict(raw or {}))


def parse_readout(block: bytes, *, serial: str, polled_at: datetime, tz: tzinfo = UTC) -> MeterValues:
    """`MeterValues` from a whole readout block ``STX ... ! CR LF ETX BCC`` (BCC checked)."""
    return values_from_data_sets(iec.decode_readout(block), serial=serial, polled_at=polled_at, tz=tz)


def register_codes(tariffs: int) -> list[str]:
    """OBIS codes read one by one in programming mode: A+..R- of the total and T1..T`tariffs`, the clock."""
    zones = [0, *range(1, tariffs + 1)] if tariffs > 1 else [0]
    return [obis.energy_code(channel, zone) for zone in zones for channel in Channel] + ["0.9.1", "0.9.2"]


class Iec62056Driver(IecProfiles, SerialLineDriver):
    """Poll IEC 62056-21 mode C meters on one serial line, each by its device address."""

    kind: ClassVar[str] = "iec62056-21"
    source: ClassVar[str] = Source.SERIAL.value
    clock_limits = clock.LIMITS  # 0.9.1 / 0.9.2 written in programming mode after the password

    def __init__(self, bus: BusConfig, *, tz: tzinfo = UTC, max_baudrate: int = 19200) -> None:
        """`tz` is the zone the meters' clocks run in; `max_baudrate` caps the speed switched to."""
        own = IecBusSettings.of(bus)
        given = own.model_fields_set
        fixed = "baudrate" in given or not own.baud_switch
        settings = LineSettings.from_bus(
            bus,
            baudrate=own.baudrate if fixed else STANDARD_INITIAL_BAUDRATE,
            bytesize=own.bytesize if "bytesize" in given else 7,
            parity=own.parity if "parity" in given else "E",
        )
        super().__init__(bus, settings, tz=tz)
        self.own = own
        self.max_baudrate = max_baudrate
        self.initial_baudrate = settings.baudrate

    def choose_baudrate(self, offered: int) -> int:
        """The speed to ask for: the meter's offer capped by `max_baudrate`; the initial one over
        ``socket://`` or with ``baud_switch = false``."""
        stays = not self.line.settings.passes_baud_changes or not self.own.baud_switch
        if stays and self.initial_baudrate in iec.BAUD_CHARS:
            return self.initial_baudrate
        allowed = [rate for rate in iec.BAUD_CHARS if rate <= min(offered, self.max_baudrate)]
        return max(allowed, default=STANDARD_INITIAL_BAUDRATE)

    def read_sync(self, meter: MeterConfig) -> MeterValues:
        """The blocking poll of one meter."""
        address = "" if meter.address is None else str(meter.address)
        try:
            sign_on = iec.encode_sign_on(address)
            given = IecMeterSettings.of(meter).password
            password = None if given is None else iec.encode_password(given)
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigError(f"meter {meter.serial}: {exc}") from None
        timeout = (meter.timeout or self.bus.timeout).total_seconds()
        with self._lock:
            polled_at = datetime.now(UTC)
            mode = iec.MODE_READOUT if password is None else iec.MODE_PROGRAMMING
            answer, baudrate = self._sign_on(sign_on, mode, timeout)
            raw: dict[str, object] = {"identification": answer.decode("ascii").strip(), "baudrate": baudrate}
            errors: dict[str, str] = {}
            if password is None:
                data_sets = iec.decode_readout(self._block(None, timeout))
            else:
                data_sets, errors = self._registers(address, password, register_codes(meter.tariffs), timeout)
        values = values_from_data_sets(
            data_sets, serial=meter.serial, polled_at=polled_at, tz=self.tz, errors=errors, raw=raw
        )
        if not values.tariffs:
            detail = "; ".join(f"{k}: {v}" for k, v in values.errors.items()) or "none was sent"
            raise ProtocolError(f"meter {meter.serial}: no energy register (1.8.x..4.8.x) read: {detail}")
        return values

    def _sign_on(self, sign_on: bytes, mode: str, timeout: float) -> tuple[bytes, int]:
        """Open the line, sign on, select `mode` and switch speed; the identification and the speed."""
        line = self.line
        line.open()
        line.set_baudrate(self.initial_baudrate)
        answer = line.exchange(sign_on, _line_ended, timeout)
        ident = iec.decode_identification(answer)
        baudrate = self.choose_baudrate(ident.baud_rate)
        reaction = max(line.settings.frame_pause, ident.reaction_time_ms / 1000)
        line.send(iec.encode_option_select(baudrate, mode), pause=reaction)
        line.drain()
        line.set_baudrate(baudrate)
        return answer, baudrate

    def programming_session(self, meter: MeterConfig, password: bytes, timeout: float) -> str:
        """Sign on in programming mode and give the password (the lock held); the meter's address."""
        address = "" if meter.address is None else str(meter.address)
        try:
            sign_on = iec.encode_sign_on(address)
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigError(f"meter {meter.serial}: {exc}") from None
        self._sign_on(sign_on, iec.MODE_PROGRAMMING, timeout)
        self._authorise(address, password, timeout)
        return address

    def _authorise(self, address: str, password: bytes, timeout: float) -> None:
        """Answer the password prompt P0 with P1; `DeviceError` when the meter refuses it."""
        prompt = iec.decode_command(self._block(None, timeout))
        if (prompt.command, prompt.command_type) != ("P", "0"):
            raise ProtocolError(f"expected the password prompt P0 after option select; got {prompt}")
        reply = self._block(password, timeout)
        if reply != bytes((iec.ACK,)):
            # A refused password is answered with NAK or, on some meters, with a break B0.
            what = "NAK" if reply == bytes((iec.NAK,)) else "break" if reply[:3] == b"\x01B0" else reply.hex()
            raise DeviceError(
                f"IEC meter {address!r}: access denied: the password was refused ({what})", code="iec.access_denied"
            )
    async def read_clock(self, meter: MeterConfig) -> ClockReading:
        """The meter's clock from a readout (`amr.drivers.iec62056_21.clock`)."""
        return await asyncio.to_thread(clock.read_clock, self, meter)

    async def shift_clock(self, meter: MeterConfig, by: timedelta) -> None:
        """Move the meter's clock by `by` (programming mode, the meter's password)."""
        await asyncio.to_thread(clock.shift_clock, self, meter, by)

    async def set_clock(self, meter: MeterConfig, to: datetime, password: str | None = None) -> None:
        """Set the meter's clock (programming mode, the meter's password; `password` is not used)."""
        await asyncio.to_thread(clock.set_clock, self, meter, to)

    async def read_journal(self, meter: MeterConfig) -> list[MeterEvent]:
        """The meter's logbook P.98 as events (`amr.drivers.iec62056_21.journal`)."""
        return await asyncio.to_thread(journal.read_journal, self, meter)

    def _block(self, request: bytes | None, timeout: float) -> bytes:
        waiter = BlockWaiter()
        if request is None:
            self.line.receive(waiter, timeout)
        else:
            self.line.exchange(request, waiter, timeout)
        assert waiter.block is not None
        return waiter.block

    def _registers(
        self, address: str, password: bytes, codes: list[str], timeout: float
    ) -> tuple[list[iec.DataSet], dict[str, str]]:
        """Programming mode: password, one read command per code, break."""
        self._authorise(address, password, timeout)
        data_sets: list[iec.DataSet] = []
        errors: dict[str, str] = {}
        try:
            for code in codes:
                try:
                    command = iec.encode_command(iec.CommandMessage("R", "1", f"{code}()"))
                    answer = self._block(command, timeout)
                    if answer == bytes((iec.NAK,)):
                        errors[code] = "the meter refused the read command (NAK)"
                        continue
                    for data_set in iec.decode_data_message(answer):
                        if data_set.address:
                            data_sets.append(data_set)
                        else:
                            errors[code] = f"the meter answered an error: {data_set.value!r}"
                except (ProtocolError, DeviceError) as exc:
                    errors[code] = str(exc)
        except (ReadTimeout, ConnectError) as exc:
            if not data_sets:
                raise
            errors["line"] = str(exc)
            return data_sets, errors
        try:
            self.line.send(iec.encode_break())
        except DriverError as exc:
            errors["break"] = str(exc)
        return data_sets, errors
