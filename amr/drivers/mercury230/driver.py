"""Mercury 230/234 (Incotex) over RS-485: open the channel, read energy since reset per tariff, close.

One poll of the meter at `address` (``MeterConfig.address``, 1..240)::

    -> [addr] 01 01 [6 password bytes] [CRC]     open, access level 1 (user)
    <- [addr] 00 [CRC]                           status OK (03: access denied)
    -> [addr] 08 00 [CRC]                        serial number and manufacture date
    <- [addr] [4 serial bytes] [DD MM YY] [CRC]
    -> [addr] 05 00 [tariff] [CRC]               energy since reset (array 0), tariff 0 = sum
    <- [addr] [A+ A- R+ R-, 4 bytes each] [CRC]  or a 4-byte status answer (a refusal)
       ... once more for each tariff 1..N ...
    -> [addr] 02 [CRC]                           close
    <- [addr] 00 [CRC]

Address 0 is the universal address every meter answers: not for polling a bus.
The serial number is read in every session: when the configured serial is a number
and the meter at the address reports another one (a meter swapped or readdressed),
the poll is refused with `MeterMismatch`, not retried, so that one meter's values never
go into another's series. A meter that refuses 08 00 is read all the same, the refusal
named in ``MeterValues.errors``.
Bytes are built and checked by `amr.protocols.mercury230`; the line by
`amr.drivers.serial_line`. A tariff that is refused, garbled or reported as
FF FF FF FF in every channel is left out and named in ``MeterValues.errors``;
the other tariffs are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Source, Values
from amr.core.events import MeterEvent
from amr.drivers.base import MeterValues
from amr.drivers.clock import ClockReading
from amr.drivers.mercury230 import clock, journal
from amr.drivers.mercury230.profile import MercuryProfiles
from amr.drivers.mercury230.settings import MercuryMeterSettings
from amr.drivers.mercury230.spec import bus_address
from amr.drivers.quality import QualitySample
from amr.drivers.serial_line import LineSettings, SerialLineDriver
from amr.errors import ConfigError, ConnectError, DeviceError, DriverError, ProtocolError, ReadTimeout
from amr.protocols import mercury230 as merc
from amr.protocols.crc import crc_ok

DEFAULT_PASSWORD = merc.DEFAULT_PASSWORDS[merc.AccessLevel.USER]


def meter_address(meter: MeterConfig) -> int:
    """The meter's bus address 1..240; raises `ConfigError` naming the meter and the fix."""
    try:
        return bus_address(meter.address)
    except ValueError as exc:
        raise ConfigError(f"meter {meter.serial}: address: {exc}") from None


def meter_password(meter: MeterConfig) -> bytes:
    """The six password bytes of the user level; the factory default 111111 when none is configured."""
    try:
        return merc.password_bytes(MercuryMeterSettings.of(meter).password or DEFAULT_PASSWORD)
    except ValueError as exc:
        raise ConfigError(f"meter {meter.serial}: password: {exc}") from None


class AnswerWaiter:
    """A completion predicate for the answer to `request`, skipping whole frames of other meters.

    A meter that answers after its timeout has passed puts its late frame on the
    line while the next meter is being asked; a frame from another address with
    a correct CRC (4 or 19 bytes) is that, and is skipped. Anything else that
    fills a whole answer is handed over for decoding to report.
    """

    def __init__(self, request: bytes) -> None:
        """Wait for the answer to `request`."""
        self.request = request
        self.answer = b""
        self.skipped: list[int] = []  # addresses of late frames passed over

    def __call__(self, received: bytes) -> bool:
        """True once `received` ends in a whole answer from the addressed meter, kept in `answer`."""
        self.skipped, rest = [], received
        while rest and rest[0] != self.request[0]:
            sizes = (merc.STATUS_ANSWER_LENGTH, merc.SERIAL_ANSWER_LENGTH, merc.ENERGY_ANSWER_LENGTH)
            stale = next((n for n in sizes if len(rest) >= n and crc_ok(rest[:n])), 0)
            if not stale:
                self.answer = rest
                return len(rest) >= merc.ENERGY_ANSWER_LENGTH
            self.skipped.append(rest[0])
            rest = rest[stale:]
        self.answer = rest
        return bool(rest) and merc.is_complete_answer(self.request, rest)


class MeterMismatch(DeviceError):
    """The meter at the configured address reports another serial number than the configured one."""

    code = "mercury.meter_mismatch"


def same_serial(configured: str, reported: str) -> bool:
    """True unless the configured serial is a number other than the reported one (leading zeros aside).

    A configured serial that is not a number (e.g. ``"kv12-A"``) cannot be compared and passes.
    """
    return not configured.isdigit() or int(configured) == int(reported)


def tariffs_to_read(meter: MeterConfig) -> list[int]:
    """Tariff 0 (sum) and, for a multi-tariff meter, T1..T`tariffs`."""
    return [0, *range(1, meter.tariffs + 1)] if meter.tariffs > 1 else [0]


class Mercury230Driver(MercuryProfiles, SerialLineDriver):
    """Poll Mercury 230/234 meters on one serial line (a port, a pty, ``socket://`` or ``rfc2217://``);
    their power profiles through `MercuryProfiles`."""

    kind: ClassVar[str] = "mercury230"
    source: ClassVar[str] = Source.SERIAL.value
    clock_limits = clock.LIMITS  # ±4 minutes once a day; setting the time at the admin level

    def __init__(self, bus: BusConfig, *, tz: tzinfo = UTC) -> None:
        """Use the bus's line settings as configured (Mercury's factory setting is 9600 8N1)."""
        super().__init__(bus, LineSettings.from_bus(bus), tz=tz)

    def read_sync(self, meter: MeterConfig) -> MeterValues:
        """The blocking poll of one meter; reopens the line if a previous error closed it."""
        address = meter_address(meter)
        password = meter_password(meter)
        timeout = (meter.timeout or self.bus.timeout).total_seconds()
        with self._lock:
            self.line.open()
            polled_at = datetime.now(UTC)
            opened = self._ask(merc.encode_open_request(address, merc.AccessLevel.USER, password), timeout)
            merc.decode_status_answer(opened, address)
            errors: dict[str, str] = {}
            raw: dict[str, object] = {"address": address}
            try:
                identity = merc.decode_serial_answer(
                    self._ask(merc.encode_parameter_request(address, merc.Parameter.SERIAL_AND_DATE), timeout),
                    address,
                )
            except (DeviceError, ProtocolError) as exc:
                errors["serial"] = str(exc)
            else:
                raw.update(meter_serial=identity.serial, made=identity.made.isoformat())
                if not same_serial(meter.serial, identity.serial):
                    self._close_quietly(address, timeout)
                    raise MeterMismatch(
                        f"meter {meter.serial}: the meter at address {address} on bus {self.bus.name} reports "
                        f"serial {identity.serial}, not the configured {meter.serial}; nothing was read: fix the "
                        "address or the serial in the configuration"
                    )
            tariffs, read_errors, line_ok = self._read_tariffs(address, tariffs_to_read(meter), timeout)
            errors.update(read_errors)
            if line_ok:
                try:
                    closed = self._ask(merc.encode_close_request(address), timeout)
                    merc.decode_status_answer(closed, address)
                except DriverError as exc:
                    errors["close"] = str(exc)
        return MeterValues(
            serial=meter.serial,
            tariffs=tariffs,
            polled_at=polled_at,
            errors=errors,
            raw=raw,
        )

    def has_quality(self, meter: MeterConfig) -> bool:
        """Mercury 230/234 answer auxiliary parameters (08 11): see `amr.drivers.mercury230.quality`."""
        return True

    async def read_quality(self, meter: MeterConfig) -> QualitySample:
        """Instantaneous values (`amr.drivers.quality.QualityReader`)."""
        from amr.drivers.mercury230 import quality

        return await asyncio.to_thread(quality.read_sync, self, meter)
    async def read_clock(self, meter: MeterConfig) -> ClockReading:
        """The meter's clock (`amr.drivers.mercury230.clock`)."""
        return await asyncio.to_thread(clock.read_clock, self, meter)

    async def shift_clock(self, meter: MeterConfig, by: timedelta) -> None:
        """Correct the meter's clock by `by` (±4 minutes, once a day)."""
        await asyncio.to_thread(clock.shift_clock, self, meter, by)

    async def set_clock(self, meter: MeterConfig, to: datetime, password: str | None = None) -> None:
        """Set the meter's clock at the admin level."""
        await asyncio.to_thread(clock.set_clock, self, meter, to, password)

    async def read_journal(self, meter: MeterConfig) -> list[MeterEvent]:
        """The events of the meter's journals (`amr.drivers.mercury230.journal`)."""
        return (await asyncio.to_thread(journal.read_journal, self, meter)).events

    def _close_quietly(self, address: int, timeout: float) -> None:
        with contextlib.suppress(DriverError):
            merc.decode_status_answer(self._ask(merc.encode_close_request(address), timeout), address)

    def _read_tariffs(
        self, address: int, tariffs: list[int], timeout: float
    ) -> tuple[dict[int, Values], dict[str, str], bool]:
        """Values per tariff, errors per tariff, and whether the line still answers.

        A refusal or a garbled answer costs only its tariff; silence or a lost
        connection ends the poll. When no tariff at all could be read, the
        first error is raised.
        """
        values: dict[int, Values] = {}
        errors: dict[str, str] = {}
        first: DriverError | None = None
        line_ok = True
        for tariff in tariffs:
            request = merc.encode_energy_request(address, merc.EnergyArray.SINCE_RESET, 0, tariff)
            try:
                channels = merc.decode_energy_answer(self._ask(request, timeout), address)
            except (DeviceError, ProtocolError, ReadTimeout, ConnectError) as exc:
                first = first or exc
                errors[f"tariff {tariff}"] = str(exc)
                if isinstance(exc, (ReadTimeout, ConnectError)):
                    line_ok = False
                    break
                continue
            if all(value is None for value in channels.values()):
                errors[f"tariff {tariff}"] = "not supported: FF FF FF FF in every channel"
                continue
            values[tariff] = channels
        if not values and first is not None:
            raise first
        return values, errors, line_ok

    def _ask(self, request: bytes, timeout: float) -> bytes:
        waiter = AnswerWaiter(request)
        try:
            self.line.exchange(request, waiter, timeout)
        except ReadTimeout as exc:
            if not waiter.skipped:
                raise
            others = ", ".join(map(str, waiter.skipped))
            raise ReadTimeout(f"{exc}; skipped late answers from address {others}") from exc
        return waiter.answer
