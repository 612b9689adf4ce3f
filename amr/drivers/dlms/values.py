"""COSEM values the driver reads: register values with their scaler-unit, and the clock's date-time.

A class 3 register gives attribute 2 (the value, any integer type) and attribute 3
(scaler_unit: a structure of integer scaler and enum unit); the quantity is
value × 10^scaler in the unit. Units (Blue Book table of units): 30 Wh, 32 varh.

A COSEM date-time is an octet string of 12 bytes::

    year (2) | month | day | weekday | hour | minute | second | hundredths | deviation (2, signed) | status

0xFF (0xFFFF for the year) is "not specified"; the deviation is the minutes from local
time to UTC (UTC = local + deviation; Moscow, UTC+3, is -180), 0x8000 when not specified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from dlms_cosem import dlms_data  # type: ignore[import-untyped]

from amr.core.domain import Channel
from amr.drivers.dlms import errors

UNIT_WH, UNIT_VARH = 30, 32
UNIT_NAMES = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V"}
DEVIATION_UNSPECIFIED = -0x8000
CLOCK_INVALID, CLOCK_DOUBTFUL = 0x01, 0x02


def decode(data: bytes) -> Any:
    """The first A-XDR value in `data` as a `dlms_cosem` data object (`ProtocolError` if undecodable)."""
    try:
        return dlms_data.DlmsDataParser().parse(bytes(data), limit=1)[0]
    except Exception as exc:  # the parser raises plain exceptions on bad tags or short data
        raise errors.protocol(f"undecodable value {bytes(data[:12]).hex(' ')}: {exc}", errors.VALUE) from None


@dataclass(frozen=True, slots=True)
class ScalerUnit:
    """A register's scaler (a power of ten) and unit code."""

    scaler: int
    unit: int

    @classmethod
    def from_bytes(cls, data: bytes) -> ScalerUnit:
        """Decode attribute 3 of a register."""
        item = decode(data)
        parts = getattr(item, "value", None)
        if not isinstance(item, dlms_data.DataStructure) or not isinstance(parts, list) or len(parts) != 2:
            raise errors.protocol(f"scaler_unit is not a structure of two: {bytes(data).hex(' ')}", errors.VALUE,
                                  retryable=False)
        scaler, unit = parts[0].value, parts[1].value
        if not isinstance(scaler, int) or not isinstance(unit, int):
            raise errors.protocol(f"scaler_unit of non-integers: {bytes(data).hex(' ')}", errors.VALUE, retryable=False)
        return cls(scaler, unit)

    def energy(self, channel: Channel, data: bytes) -> int:
        """Whole Wh (varh) of the register value in `data`; `ProtocolError` ``dlms.value`` otherwise."""
        expected = UNIT_WH if channel in (Channel.A_PLUS, Channel.A_MINUS) else UNIT_VARH
        if self.unit != expected:
            raise errors.protocol(
                f"{channel.label}: unit {UNIT_NAMES.get(self.unit, self.unit)}, expected "
                f"{UNIT_NAMES[expected]} (check the OBIS code)", errors.VALUE, retryable=False)
        raw = decode(data).value
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise errors.protocol(f"{channel.label}: value {raw!r} is not a number", errors.VALUE, retryable=False)
        exact = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(raw)
        amount = exact.scaleb(self.scaler)
        if amount != amount.to_integral_value():
            raise errors.protocol(
                f"{channel.label}: {raw} × 10^{self.scaler} {UNIT_NAMES[expected]} = {amount} is not a whole "
                f"{UNIT_NAMES[expected]}", errors.VALUE, retryable=False)
        return int(amount)


def clock(data: bytes, site: tzinfo) -> datetime:
    """The meter's clock (attribute 2 of class 8) in UTC; a time without deviation is the site's local time."""
    item = decode(data)
    raw = bytes(item.value) if isinstance(item, dlms_data.OctetStringData | dlms_data.DateTimeData) else b""
    if len(raw) != 12:
        raise errors.protocol(f"clock: not a 12-byte date-time: {bytes(data[:16]).hex(' ')}", errors.VALUE)
    year = int.from_bytes(raw[0:2], "big")
    month, day, hour, minute, second, hundredths = raw[2], raw[3], raw[5], raw[6], raw[7], raw[8]
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    status = raw[11]
    if 0xFF in (month, day, hour, minute, second) or year == 0xFFFF:
        raise errors.protocol(f"clock: date-time with unspecified fields: {raw.hex(' ')}", errors.VALUE)
    if status != 0xFF and status & CLOCK_INVALID:
        raise errors.protocol("clock: the meter flags its own time as invalid", errors.VALUE, retryable=False)
    try:
        local = datetime(year, month, day, hour, minute, second, 0 if hundredths == 0xFF else hundredths * 10_000)
    except ValueError as exc:
        raise errors.protocol(f"clock: {exc}: {raw.hex(' ')}", errors.VALUE) from None
    if deviation == DEVIATION_UNSPECIFIED:
        return local.replace(tzinfo=site).astimezone(UTC)
    return (local + timedelta(minutes=deviation)).replace(tzinfo=UTC)
