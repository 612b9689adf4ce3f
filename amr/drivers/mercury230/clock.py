"""Mercury 230 clock: read it, correct it by a shift (±4 minutes, once a day), set it (admin level).

Each operation is a session of its own on the line, under the driver's lock (so it never
interleaves with a poll)::

    -> [addr] 01 01 [user password] [CRC]    open, level 1 (2 with the admin password to set the time)
    -> [addr] 04 00 [CRC]                    read the clock (local time, BCD)
    -> [addr] 03 0D ss mm hh [CRC]           correct: the meter's time moved to hh:mm:ss
    <- [addr] 00 [CRC]                       done; 04: already corrected today
    -> [addr] 02 [CRC]                       close

Bytes are built and checked by `amr.protocols.mercury230_time`. A correction is computed from
the clock read in the same session (its time plus the shift); one that would cross midnight
is not sent (the command carries no date), nor one beyond ±4 minutes.
"""

from __future__ import annotations

import contextlib
import time as monotonic_time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from amr.config import MeterConfig
from amr.drivers.clock import ClockLimits, ClockReading
from amr.errors import DeviceError, DriverError
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_time as mt

if TYPE_CHECKING:
    from amr.drivers.mercury230.driver import Mercury230Driver

LIMITS = ClockLimits(
    max_shift=timedelta(seconds=mt.MAX_CORRECTION_S),
    once_a_day=True,
    can_set=True,
    set_needs="the admin (level 2) password",
)
T = TypeVar("T")


class MercurySession:
    """One open channel to one meter on the driver's line (the caller holds the driver's lock)."""

    def __init__(self, driver: Mercury230Driver, meter: MeterConfig) -> None:
        """Talk to `meter` on `driver`'s line with its address and timeout."""
        from amr.drivers.mercury230.driver import meter_address

        self.driver = driver
        self.meter = meter
        self.address = meter_address(meter)
        self.timeout = (meter.timeout or driver.bus.timeout).total_seconds()

    def ask(self, request: bytes) -> bytes:
        """Send a request of `mercury230_time` and receive its answer (or a status answer)."""
        return self.driver.line.exchange(request, lambda got: mt.is_complete(request, got), self.timeout)

    def ask_status(self, request: bytes) -> None:
        """Send a request answered by a status answer; `MercuryStatusError` for a refusal."""
        answer = self.driver.line.exchange(request, lambda got: len(got) >= merc.STATUS_ANSWER_LENGTH, self.timeout)
        merc.decode_status_answer(answer, self.address)

    def clock(self) -> tuple[mt.MeterClock, datetime]:
        """The meter's clock and the head-end's UTC time in the middle of the exchange."""
        before = monotonic_time.monotonic()
        sent = datetime.now(UTC)
        answer = mt.decode_clock_answer(self.ask(mt.encode_read_clock(self.address)), self.address)
        half = (monotonic_time.monotonic() - before) / 2
        return answer, sent + timedelta(seconds=half)

    def utc(self, local: datetime) -> datetime:
        """A naive local time of the meter as UTC (the site's zone)."""
        return local.replace(tzinfo=self.driver.tz).astimezone(UTC)


def in_session(
    driver: Mercury230Driver, meter: MeterConfig, work: Callable[[MercurySession], T], *,
    level: merc.AccessLevel = merc.AccessLevel.USER, password: str | None = None,
) -> T:
    """Open the channel at `level`, do `work`, close (quietly after a failure)."""
    from amr.drivers.mercury230.driver import meter_password

    secret = merc.password_bytes(password) if password is not None else meter_password(meter)
    with driver._lock:
        driver.line.open()
        session = MercurySession(driver, meter)
        session.ask_status(merc.encode_open_request(session.address, level, secret))
        try:
            return work(session)
        finally:
            with contextlib.suppress(DriverError):
                session.ask_status(merc.encode_close_request(session.address))


def read_clock(driver: Mercury230Driver, meter: MeterConfig) -> ClockReading:
    """The meter's clock (command 04 00) against the head-end's."""

    def work(session: MercurySession) -> ClockReading:
        answer, read_at = session.clock()
        raw: dict[str, object] = {"local": answer.local.isoformat(), "winter": answer.winter}
        return ClockReading(session.utc(answer.local), read_at, raw)

    return in_session(driver, meter, work)


def shift_clock(driver: Mercury230Driver, meter: MeterConfig, by: timedelta) -> None:
    """Correct the clock by `by` (03 0D), at most ±4 minutes, once a day; `DeviceError` when refused."""
    if abs(by) > timedelta(seconds=mt.MAX_CORRECTION_S):
        raise DeviceError(
            f"meter {meter.serial}: a Mercury 230 correction moves the clock at most ±{mt.MAX_CORRECTION_S} s; "
            f"asked {by.total_seconds():+.0f} s: set the time at the admin level instead",
            code="clock.limit",
        )

    def work(session: MercurySession) -> None:
        answer, _ = session.clock()
        target = answer.local + by
        if target.date() != answer.local.date():
            raise DeviceError(
                f"meter {meter.serial}: a correction from {answer.local:%H:%M:%S} by {by.total_seconds():+.0f} s "
                "would cross midnight, which the command (time without a date) cannot say; try after 00:05",
                code="clock.midnight", retryable=True,
            )
        session.ask_status(mt.encode_correct_clock(session.address, target.time()))

    in_session(driver, meter, work)


def set_clock(driver: Mercury230Driver, meter: MeterConfig, to: datetime, password: str | None) -> None:
    """Set clock and date (03 0C) at the admin level with `password` (the factory 222222 when None)."""
    local = to.astimezone(driver.tz).replace(tzinfo=None, microsecond=0)
    secret = password or merc.DEFAULT_PASSWORDS[merc.AccessLevel.ADMIN]

    def work(session: MercurySession) -> None:
        session.ask_status(mt.encode_set_clock(session.address, local))

    in_session(driver, meter, work, level=merc.AccessLevel.ADMIN, password=secret)


__all__ = ["LIMITS", "MercurySession", "in_session", "read_clock", "set_clock", "shift_clock"]
