"""The DLMS/COSEM (СПОДЭС) clock 0.0.1.0.0.255 (class 8): read it, shift it, set it.

Blue Book, Clock (class_id 8, version 0): attribute 2 ``time`` (a date-time, see `values.clock`),
method 6 ``shift_time`` (data: long, −900..900 seconds, the clock moved by that many)::

    C0 01 II 00 08 00 00 01 00 00 FF 02 00                 Get-Request-Normal: the time
    C3 01 II 00 08 00 00 01 00 00 FF 06 01 10 FF 10        Action-Request-Normal: shift_time(−240)
    C7 01 II 00 00                                         Action-Response-Normal: success
    C1 01 II 00 08 00 00 01 00 00 FF 02 00 09 0C <date-time>   Set-Request-Normal: set the time
    C5 01 II 00                                            Set-Response-Normal: success

A drift within ±900 s is shifted (the meter keeps its own sub-second phase and the shift is
logged as a correction in the meter); a larger one is set outright, in the site's local time with
its deviation, sent as it is when the SET leaves (the time spent associating is added). СПОДЭС
lets only the configurator (client 48) write the clock: a meter configured with another client is
refused (``dlms.access_denied``); `set_clock` given a password associates as client 48 with it (LLS)
unless the meter is read as client 48 already.
Each operation is an association of its own (`operations.in_session`).
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any

from dlms_cosem import cosem, enumerations  # type: ignore[import-untyped]
from dlms_cosem.protocol import xdlms  # type: ignore[import-untyped]
from pydantic import SecretStr

from amr.config import MeterConfig
from amr.drivers.clock import ClockLimits, ClockReading
from amr.drivers.dlms import errors, values
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import CLOCK, CLOCK_OBIS, MeterLink
from amr.errors import DeviceError, DriverError

if TYPE_CHECKING:
    from amr.drivers.dlms.workers import Workers

CLOCK_CLASS, TIME, SHIFT_TIME = 8, 2, 6
MAX_SHIFT = timedelta(seconds=900)  # Blue Book: shift_time takes −900..900 s
CONFIGURATOR = 48
LIMITS = ClockLimits(max_shift=MAX_SHIFT, once_a_day=False, can_set=True,
                     set_needs="the configurator (client 48) LLS password as admin_password")
_DENIED = {enumerations.DataAccessResult.READ_WRITE_DENIED, enumerations.DataAccessResult.SCOPE_OF_ACCESS_VIOLATED}


def date_time(moment: datetime, site: tzinfo) -> bytes:
    """A 12-byte COSEM date-time of `moment` in the site's local time: deviation = minutes from local
    time to UTC (UTC+3 is −180), status bit 7 when summer time is in force."""
    local = moment.astimezone(site)
    offset, dst = local.utcoffset() or timedelta(0), local.dst() or timedelta(0)
    return (local.year.to_bytes(2, "big")
            + bytes((local.month, local.day, local.isoweekday(), local.hour, local.minute, local.second,
                     local.microsecond // 10_000))
            + (-int(offset.total_seconds() // 60)).to_bytes(2, "big", signed=True)
            + bytes((0x80 if dst else 0,)))


def read(session: Session, link: MeterLink, site: tzinfo) -> ClockReading:
    """The meter's clock against ours at the middle of the exchange."""
    started, sent = time.monotonic(), datetime.now(UTC)
    meter_time = values.clock(session.get(CLOCK_CLASS, link.obis(CLOCK, CLOCK_OBIS), TIME), site)
    read_at = sent + timedelta(seconds=(time.monotonic() - started) / 2)
    return ClockReading(meter_time, read_at, {"client": link.security.client})


def shift(session: Session, link: MeterLink, by: timedelta) -> None:
    """shift_time(by), whole seconds; `DeviceError` when the meter refuses."""
    from amr.drivers.dlms import operations

    seconds = round(by.total_seconds())
    data = bytes((0x10,)) + seconds.to_bytes(2, "big", signed=True)  # long (Integer16)
    operations.action(session, CLOCK_CLASS, link.obis(CLOCK, CLOCK_OBIS), SHIFT_TIME, data)


def set_time(session: Session, link: MeterLink, to: datetime, site: tzinfo, asked: float) -> None:
    """SET attribute 2 to `to` plus the time since `asked` (monotonic); `DeviceError` when refused."""
    moment = to + timedelta(seconds=time.monotonic() - asked)
    obis = link.obis(CLOCK, CLOCK_OBIS)
    target = cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis.from_string(obis), TIME)
    data = bytes((0x09, 12)) + date_time(moment, site)
    answer: Any = session._exchange(xdlms.SetRequestNormal(cosem_attribute=target, data=data))
    if isinstance(answer, xdlms.ExceptionResponse):
        raise errors.device(f"{obis} attribute 2: exception response {answer.service_error!r}", errors.DATA_ACCESS,
                            retryable=True)
    if not isinstance(answer, xdlms.SetResponseNormal):
        raise errors.protocol(f"{obis} attribute 2: unexpected {type(answer).__name__} to a SET")
    if answer.result is not enumerations.DataAccessResult.SUCCESS:
        name = answer.result.name.lower().replace("_", "-")
        code = errors.ACCESS_DENIED if answer.result in _DENIED else errors.DATA_ACCESS
        raise _explained(errors.device(f"{obis} attribute 2: {name}", code, retryable=False), link)


def _explained(exc: DriverError, link: MeterLink) -> DriverError:
    if exc.code != errors.ACCESS_DENIED or link.security.client == CONFIGURATOR:
        return exc
    return errors.device(f"{exc}: the clock is written by the configurator (client 48), this meter is read as "
                         f"client {link.security.client}", errors.ACCESS_DENIED, retryable=False)


class DlmsClock:
    """The ``clock`` capability of the DLMS drivers (`amr.drivers.clock.ClockKeeper`)."""

    clock_limits = LIMITS
    workers: Workers
    tz: tzinfo

    async def read_clock(self, meter: MeterConfig) -> ClockReading:
        """The clock in an association of its own."""
        from amr.drivers.dlms import operations

        return await self.workers.run(operations.in_session, self, meter, partial(read, site=self.tz))

    async def shift_clock(self, meter: MeterConfig, by: timedelta) -> None:
        """shift_time by `by` (at most ±900 s) as the meter's configured client."""
        if abs(by) > MAX_SHIFT:
            raise DeviceError(f"meter {meter.serial}: a DLMS clock shifts by at most ±{MAX_SHIFT.seconds} s; asked "
                              f"{by.total_seconds():+.0f} s: set the time instead", code="clock.limit")
        from amr.drivers.dlms import operations

        await self.workers.run(operations.in_session, self, meter, partial(shift, by=by))

    async def set_clock(self, meter: MeterConfig, to: datetime, password: str | None = None) -> None:
        """SET the time to `to`; with `password`, as the configurator (client 48, LLS) with it."""
        from amr.drivers.dlms import operations

        work = partial(set_time, to=to, site=self.tz, asked=time.monotonic())
        if password is None:
            await self.workers.run(operations.in_session, self, meter, work)
        else:
            await self.workers.run(_as_configurator, self, meter, password, work)


def _as_configurator(driver: Any, meter: MeterConfig, password: str, work: Any) -> None:
    """`work` in an association as client 48: the meter's own when it is read as 48, else with LLS
    `password` (the meter's other link settings kept)."""

    def on_port(port: Any, link: MeterLink, meter: MeterConfig, timeout: float) -> None:
        admin = link  # a meter read as the configurator already: its own credentials (LLS or HLS-GMAC)
        if link.security.client != CONFIGURATOR:
            security = link.security.model_copy(update={"client": CONFIGURATOR, "authentication": "lls",
                                                        "password": SecretStr(password)})
            admin = dataclasses.replace(link, security=security)
        driver._associated(port, admin, meter, timeout, lambda session: work(session, admin))

    driver._on_port(meter, on_port)


__all__ = ["LIMITS", "DlmsClock", "date_time", "read", "set_time", "shift"]
