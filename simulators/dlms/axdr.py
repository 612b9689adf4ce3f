"""A-XDR encoding of the COSEM data a simulated meter answers with (IEC 62056-6-2 / Blue Book 4.1.5).

Every value is a tag byte and its contents; arrays, structures and strings carry their element
count or byte length in the variable-length form (``< 0x80``: one byte; else ``0x81 n`` or ``0x82 n n``)::

    06 00 00 30 39                 double-long-unsigned 12345
    02 02 0F 00 16 1E              structure { integer 0, enum 30 }: the scaler-unit "10^0 Wh"
    09 0C 07 EA 03 1D 07 0C 00 00 00 FF 4C 00     octet-string(12): a COSEM date-time
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

NULL, ARRAY, STRUCTURE, BOOLEAN = 0x00, 0x01, 0x02, 0x03
DOUBLE_LONG_UNSIGNED, OCTET_STRING, INTEGER, LONG = 0x06, 0x09, 0x0F, 0x10
UNSIGNED, LONG_UNSIGNED, ENUM = 0x11, 0x12, 0x16

DEVIATION_UNSPECIFIED = -0x8000
STATUS_DAYLIGHT_SAVING = 0x80  # clock status bit 7: daylight saving time active


def length(count: int) -> bytes:
    """The variable-length encoding of a length or element count."""
    if count < 0x80:
        return bytes((count,))
    size = (count.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + count.to_bytes(size, "big")


def read_length(data: bytes, position: int) -> tuple[int, int]:
    """A variable-length count at `position`: (count, position after it)."""
    first = data[position]
    if first < 0x80:
        return first, position + 1
    size = first & 0x7F
    return int.from_bytes(data[position + 1 : position + 1 + size], "big"), position + 1 + size


def double_long_unsigned(value: int) -> bytes:
    """Unsigned32."""
    return bytes((DOUBLE_LONG_UNSIGNED,)) + value.to_bytes(4, "big")


def integer(value: int) -> bytes:
    """Integer8."""
    return bytes((INTEGER,)) + value.to_bytes(1, "big", signed=True)


def long(value: int) -> bytes:
    """Integer16."""
    return bytes((LONG,)) + value.to_bytes(2, "big", signed=True)


def unsigned(value: int) -> bytes:
    """Unsigned8."""
    return bytes((UNSIGNED, value))


def long_unsigned(value: int) -> bytes:
    """Unsigned16."""
    return bytes((LONG_UNSIGNED,)) + value.to_bytes(2, "big")


def enum(value: int) -> bytes:
    """An enumerated value."""
    return bytes((ENUM, value))


def boolean(value: bool) -> bytes:
    """A boolean."""
    return bytes((BOOLEAN, 0xFF if value else 0x00))


def octet_string(value: bytes) -> bytes:
    """An octet string with its length."""
    return bytes((OCTET_STRING,)) + length(len(value)) + value


def structure(*members: bytes) -> bytes:
    """A structure of already encoded members."""
    return bytes((STRUCTURE,)) + length(len(members)) + b"".join(members)


def array(elements: list[bytes]) -> bytes:
    """An array of already encoded elements."""
    return bytes((ARRAY,)) + length(len(elements)) + b"".join(elements)


def null() -> bytes:
    """null-data."""
    return bytes((NULL,))


def date_time(moment: datetime, timezone: str) -> bytes:
    """A COSEM date-time (12 bytes) of `moment` in the local time of `timezone`::

        YY YY  MM  DD  WD  hh  mm  ss  cc  DV DV  ST
        year   mon day dow hour min sec 1/100  deviation  clock status

    dow 1 = Monday; deviation: minutes from local time to UTC (UTC+3 is -180), signed; status bit 7:
    daylight saving time in force.
    """
    local = moment.astimezone(ZoneInfo(timezone))
    offset = local.utcoffset() or timedelta(0)
    dst = local.dst() or timedelta(0)
    deviation = -int(offset.total_seconds() // 60)
    return (
        local.year.to_bytes(2, "big")
        + bytes((local.month, local.day, local.isoweekday(), local.hour, local.minute, local.second))
        + bytes((local.microsecond // 10_000,))
        + deviation.to_bytes(2, "big", signed=True)
        + bytes((STATUS_DAYLIGHT_SAVING if dst else 0,))
    )


def parse_date_time(raw: bytes, timezone: str) -> datetime:
    """The UTC moment of a 12-byte COSEM date-time; an unspecified deviation means `timezone`'s local time.

    Raises ValueError naming what is wrong (not 12 bytes, a field not specified, a date that does not exist).
    """
    if len(raw) != 12:
        raise ValueError(f"a date-time is 12 bytes, not {len(raw)}")
    year = int.from_bytes(raw[0:2], "big")
    month, day, _, hour, minute, second, hundredths = raw[2:9]
    if year == 0xFFFF or 0xFF in (month, day, hour, minute, second):
        raise ValueError("a clock is set with every date and time field specified")
    naive = datetime(year, month, day, hour, minute, second, 0 if hundredths == 0xFF else hundredths * 10_000)
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    if deviation == DEVIATION_UNSPECIFIED:
        return naive.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    return (naive + timedelta(minutes=deviation)).replace(tzinfo=UTC)
