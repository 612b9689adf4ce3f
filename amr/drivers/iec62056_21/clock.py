"""IEC 62056-21 clock: read ``0.9.1``/``0.9.2`` and write them in programming mode after the password.

IEC 62056-21:2002, mode C with programming (option select Y = 1), commands R1 (read) and W1
(write ASCII data), each answered by ACK, NAK or an error message::

    -> /?address!CR LF            <- /XXXZident CR LF
    -> ACK 0 Z 1 CR LF            (programming mode; both switch to Z)
    <- SOH P0 STX (seed) ETX BCC
    -> SOH P1 STX (password) ETX BCC        <- ACK (NAK or B0: refused)
    -> SOH R1 STX 0.9.1() ETX BCC           <- STX 0.9.1(hhmmss) ETX BCC    the meter's time ...
    -> SOH R1 STX 0.9.2() ETX BCC           <- STX 0.9.2(YYMMDD) ETX BCC    ... and date
    -> SOH W1 STX 0.9.2(YYMMDD) ETX BCC     <- ACK                          the new date ...
    -> SOH W1 STX 0.9.1(hhmmss) ETX BCC     <- ACK                          ... and time
    -> SOH B0 ETX BCC

The protocol sets the clock outright, with no limit of its own (`LIMITS`); a shift is the
meter's time read in the same session plus the shift. Writing needs the meter's ``password``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from amr.config import MeterConfig
from amr.drivers.clock import ClockLimits, ClockReading
from amr.drivers.iec62056_21.settings import IecMeterSettings
from amr.errors import DeviceError, DriverError, ProtocolError
from amr.protocols import iec62056_21 as iec

if TYPE_CHECKING:
    from amr.drivers.iec62056_21.driver import Iec62056Driver

LIMITS = ClockLimits(max_shift=None, once_a_day=False, can_set=True, set_needs="the meter's password")


def write_command(code: str, value: str) -> bytes:
    """``SOH W1 STX code(value) ETX BCC``."""
    return iec.encode_command(iec.CommandMessage("W", "1", f"{code}({value})"))


def clock_values(local: datetime) -> tuple[str, str]:
    """The 0.9.2 date (YYMMDD) and 0.9.1 time (hhmmss) of a local time."""
    return local.strftime("%y%m%d"), local.strftime("%H%M%S")


class ProgrammingSession:
    """One programming-mode session with one meter (the caller holds the driver's lock)."""

    def __init__(self, driver: Iec62056Driver, meter: MeterConfig) -> None:
        """Sign on to `meter` in programming mode and send its password."""
        self.driver = driver
        self.meter = meter
        self.address = "" if meter.address is None else str(meter.address)
        given = IecMeterSettings.of(meter).password
        if given is None:
            raise DeviceError(f"meter {meter.serial}: writing the clock needs the meter's password (key password)",
                              code="iec.no_password")
        self.timeout = (meter.timeout or driver.bus.timeout).total_seconds()
        driver.programming_session(meter, iec.encode_password(given), self.timeout)

    def read(self, code: str) -> str:
        """The value of one data set (R1)."""
        answer = self.driver._block(iec.encode_command(iec.CommandMessage("R", "1", f"{code}()")), self.timeout)
        for data_set in iec.decode_data_message(answer):
            if data_set.address:
                return data_set.value
            raise DeviceError(f"IEC meter {self.address!r}: {code}: {data_set.value}", code="iec.error")
        raise ProtocolError(f"IEC meter {self.address!r}: no {code} in the answer")

    def write(self, code: str, value: str) -> None:
        """Write one data set (W1); `DeviceError` unless the meter acknowledges."""
        answer = self.driver._block(write_command(code, value), self.timeout)
        if answer != bytes((iec.ACK,)):
            what = "NAK" if answer == bytes((iec.NAK,)) else answer.decode("ascii", "replace")
            raise DeviceError(f"IEC meter {self.address!r}: writing {code}({value}) refused ({what})",
                              code="iec.write_refused")

    def local_clock(self) -> datetime:
        """The meter's clock as an aware local time."""
        from amr.drivers.iec62056_21.driver import meter_clock

        sets = [iec.DataSet("0.9.1", self.read("0.9.1")), iec.DataSet("0.9.2", self.read("0.9.2"))]
        found = meter_clock(sets, self.driver.tz)
        if found is None:
            raise ProtocolError(f"IEC meter {self.address!r}: no clock in 0.9.1/0.9.2")
        return found.astimezone(self.driver.tz)

    def set(self, local: datetime) -> None:
        """Write the date, then the time."""
        day, moment = clock_values(local)
        self.write("0.9.2", day)
        self.write("0.9.1", moment)

    def close(self) -> None:
        """Break: the meter returns to its initial state."""
        with contextlib.suppress(DriverError):
            self.driver.line.send(iec.encode_break())


def read_clock(driver: Iec62056Driver, meter: MeterConfig) -> ClockReading:
    """The meter's clock from a readout (a poll)."""
    values = driver.read_sync(meter)
    if values.meter_time is None:
        raise ProtocolError(f"meter {meter.serial}: no 0.9.1/0.9.2 in its readout")
    return ClockReading(values.meter_time, values.polled_at)


def shift_clock(driver: Iec62056Driver, meter: MeterConfig, by: timedelta) -> None:
    """Move the meter's clock by `by`: read it, write it back shifted."""
    with driver._lock:
        session = ProgrammingSession(driver, meter)
        try:
            session.set((session.local_clock() + by).replace(microsecond=0))
        finally:
            session.close()


def set_clock(driver: Iec62056Driver, meter: MeterConfig, to: datetime) -> None:
    """Set the meter's clock to `to` (written in the meter's zone)."""
    with driver._lock:
        session = ProgrammingSession(driver, meter)
        try:
            session.set(to.astimezone(UTC).astimezone(driver.tz).replace(microsecond=0))
        finally:
            session.close()


__all__ = ["LIMITS", "ProgrammingSession", "clock_values", "read_clock", "set_clock", "shift_clock", "write_command"]
