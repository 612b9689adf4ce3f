"""The DLMS/COSEM (СПОДЭС) load profile 1.0.99.1.0.255 read by a range of its clock column.

A profile generic (interface class 7; DLMS UA 1000-1 "Blue Book", Profile generic) has attribute
2 the buffer, 3 the capture objects (its columns), 4 the capture period in seconds. Each column
is a capture_object_definition::

    structure { class_id long-unsigned, logical_name octet-string[6], attribute_index integer,
                data_index long-unsigned }

СПОДЭС load profile columns: the clock 0.0.1.0.0.255 (class 8, attribute 2), the energy of the
period per channel (class 3 registers A+ 1.0.1.29.0.255, A- 1.0.2.29.0.255, R+ 1.0.3.29.0.255,
R- 1.0.4.29.0.255, attribute 2; their attribute 3 the scaler-unit) and a status (0.0.96.10.x.255,
class 1, attribute 2). Another column is ignored. The buffer is read with selective access,
access selector 1, a range_descriptor (Blue Book, Profile generic, attribute 2 selective access)::

    C0 01 II 00 07 01 00 63 01 00 FF 02     Get-Request-Normal, class 7, 1.0.99.1.0.255, attribute 2
    01 01                                   access selection present, selector 1: range_descriptor
    02 04                                   structure {
      02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00    restricting_object: the clock's attribute 2
      09 0C <date-time>                                        from_value
      09 0C <date-time>                                        to_value
      01 00                                                    selected_values: empty, every column }

The meter answers the entries whose clock lies in [from_value, to_value] (both included), usually
in GET blocks. An entry is captured at the END of its period (DLMS profiles capture on the period's
close), so the interval of an entry stamped t is [t − period, t). A clock value of null-data in an
entry stands for the previous entry's plus the capture period (Blue Book, buffer compression).
Entries stamped off a period boundary (an extra capture on power-up or a clock change) are not
interval records and are left out.

Status bits (the DLMS UA "AMR profile status", as СПОДЭС meters fill it): bit 7 power down, bit 5
clock adjusted, bit 2 data not valid, bit 1 clock invalid, bit 0 critical error; bit 3 (daylight
saving) is no fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from fractions import Fraction
from functools import partial
from typing import TYPE_CHECKING, Any

from dlms_cosem import cosem, dlms_data, enumerations  # type: ignore[import-untyped]
from dlms_cosem.cosem.capture_object import CaptureObject  # type: ignore[import-untyped]
from dlms_cosem.cosem.selective_access import RangeDescriptor  # type: ignore[import-untyped]

from amr.config import MeterConfig
from amr.core.domain import Channel
from amr.core.intervals import ProfileFlag, ProfileRecord, aligned, floor_interval
from amr.drivers.dlms import errors, values
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import CLOCK, CLOCK_OBIS, DlmsMeterSettings, MeterLink
from amr.drivers.profiles import ProfileReader, ProfileRecords

if TYPE_CHECKING:
    from amr.drivers.dlms.workers import Workers

PROFILE_OBIS = "1.0.99.1.0.255"
PROFILE_GENERIC, CLOCK_CLASS, DATA_CLASS = 7, 8, 1
BUFFER, CAPTURE_OBJECTS, CAPTURE_PERIOD = 2, 3, 4
SCALED_CLASSES = (3, 4)  # register, extended register: attribute 3 the scaler-unit
CHANNEL_OBIS: dict[str, Channel] = {
    "1.0.1.29.0.255": Channel.A_PLUS,
    "1.0.2.29.0.255": Channel.A_MINUS,
    "1.0.3.29.0.255": Channel.R_PLUS,
    "1.0.4.29.0.255": Channel.R_MINUS,
}
STATUS_PREFIX = "0.0.96.10."
STATUS_FLAGS = (
    (0x80, ProfileFlag.POWER_FAILURE),
    (0x20, ProfileFlag.CLOCK_CHANGED),
    (0x04 | 0x02 | 0x01, ProfileFlag.INVALID),
)
DEFAULT_DEPTH = timedelta(days=120)  # a СПОДЭС meter's 30-minute profile; the meter's profile_depth overrides it


@dataclass(frozen=True, slots=True)
class Column:
    """One capture object: class, logical name, attribute and data index (0: the whole attribute)."""

    class_id: int
    obis: str
    attribute: int
    data_index: int = 0


@dataclass(frozen=True, slots=True)
class Layout:
    """What the columns of a meter's profile are: where the clock and status are, the channels with
    their scaler-units, and the capture period."""

    clock: int
    channels: dict[int, tuple[Channel, values.ScalerUnit]]
    status: int | None
    period: timedelta
    clock_obis: str = CLOCK_OBIS  # the clock column's object, the range's restricting object


def parse_capture_objects(data: bytes) -> list[Column]:
    """Attribute 3 of a profile generic; `ProtocolError` ``dlms.value`` when it is not an array of four-part
    structures."""
    item = values.decode(data)
    if not isinstance(item, dlms_data.DataArray):
        raise errors.protocol(f"capture objects: not an array: {bytes(data[:12]).hex(' ')}", errors.VALUE)
    found = []
    for index, entry in enumerate(item.value):
        parts = entry.value if isinstance(entry, dlms_data.DataStructure) else None
        if not isinstance(parts, list) or len(parts) != 4:
            raise errors.protocol(f"capture object {index} is not a structure of four", errors.VALUE)
        name = parts[1].value
        numbers = (parts[0].value, parts[2].value, parts[3].value)
        if not isinstance(name, bytes | bytearray) or len(name) != 6 or not all(isinstance(n, int) for n in numbers):
            raise errors.protocol(f"capture object {index} is not class, logical name, attribute, index", errors.VALUE)
        found.append(Column(numbers[0], ".".join(str(b) for b in name), numbers[1], numbers[2]))
    return found


def layout_of(columns: list[Column], period_seconds: int, scalers: dict[str, values.ScalerUnit]) -> Layout:
    """The `Layout` of `columns`; `scalers` by OBIS of the channel registers. `ProtocolError` when the
    profile has no clock column, no energy column or no period."""
    clock = next((i for i, c in enumerate(columns) if c.class_id == CLOCK_CLASS and c.attribute == 2), None)
    if clock is None:
        raise errors.protocol(f"{PROFILE_OBIS}: no clock among its capture objects", errors.VALUE, retryable=False)
    channels = {i: (CHANNEL_OBIS[c.obis], scalers[c.obis]) for i, c in enumerate(columns) if c.obis in scalers}
    if not channels:
        raise errors.protocol(f"{PROFILE_OBIS}: none of its columns is an energy of the period "
                              f"({', '.join(CHANNEL_OBIS)})", errors.VALUE, retryable=False)
    status = next((i for i, c in enumerate(columns) if c.obis.startswith(STATUS_PREFIX) and c.attribute == 2), None)
    if period_seconds <= 0:
        raise errors.protocol(f"{PROFILE_OBIS}: capture period {period_seconds} s (not periodic)", errors.VALUE,
                              retryable=False)
    return Layout(clock, channels, status, timedelta(seconds=period_seconds), columns[clock].obis)


def range_descriptor(start: datetime, end: datetime, period: timedelta, site: tzinfo,
                     clock_obis: str = CLOCK_OBIS) -> Any:
    """The range of clock values of the entries of the intervals starting in [start, end): their capture
    times, start + period to end (inclusive), in the site's local time with its deviation."""
    return clock_range(start + period, end, site, clock_obis)


def clock_range(since: datetime, until: datetime, site: tzinfo, clock_obis: str = CLOCK_OBIS) -> Any:
    """A range_descriptor of the clock column (0.0.1.0.0.255) attribute 2, [since, until] in local time."""
    clock = CaptureObject(cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis.from_string(clock_obis),
                                               2), 0)
    return RangeDescriptor(clock, since.astimezone(site), until.astimezone(site))


def _flags(status: int) -> ProfileFlag:
    flags = ProfileFlag.NONE
    for bits, flag in STATUS_FLAGS:
        if status & bits:
            flags |= flag
    return flags


def _energy(raw: Any, channel: Channel, scaler: values.ScalerUnit) -> Fraction:
    expected = values.UNIT_WH if channel in (Channel.A_PLUS, Channel.A_MINUS) else values.UNIT_VARH
    if scaler.unit != expected:
        raise errors.protocol(f"{PROFILE_OBIS} {channel.label}: unit {values.UNIT_NAMES.get(scaler.unit, scaler.unit)}"
                              f", expected {values.UNIT_NAMES[expected]}", errors.VALUE, retryable=False)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise errors.protocol(f"{PROFILE_OBIS} {channel.label}: value {raw!r} is not an integer", errors.VALUE)
    return Fraction(raw) * Fraction(10) ** scaler.scaler


def records_from_buffer(buffer: bytes, layout: Layout, site: tzinfo) -> list[ProfileRecord]:
    """The interval records of a profile buffer (attribute 2 as received), oldest first."""
    entries = values.decode(buffer)
    if not isinstance(entries, dlms_data.DataArray):
        raise errors.protocol(f"{PROFILE_OBIS}: the buffer is not an array", errors.VALUE)
    found: list[ProfileRecord] = []
    previous: datetime | None = None
    for number, entry in enumerate(entries.value):
        parts = entry.value if isinstance(entry, dlms_data.DataStructure) else None
        if not isinstance(parts, list) or len(parts) <= max(layout.clock, *layout.channels):
            raise errors.protocol(f"{PROFILE_OBIS}: entry {number} is not a structure of its columns", errors.VALUE)
        stamp = parts[layout.clock]
        if isinstance(stamp, dlms_data.NullData):
            if previous is None:
                raise errors.protocol(f"{PROFILE_OBIS}: entry {number} has no clock and none before it", errors.VALUE)
            captured = previous + layout.period
        else:
            raw = bytes(stamp.value) if isinstance(stamp.value, bytes | bytearray) else b""
            captured = values.clock(bytes((0x09, len(raw))) + raw, site)
        previous = captured
        start = captured - layout.period
        if not aligned(start, layout.period):
            continue  # an asynchronous capture (power-up, clock set): no interval of its own
        exact = {channel: _energy(parts[i].value, channel, scaler)
                 for i, (channel, scaler) in layout.channels.items() if not isinstance(parts[i], dlms_data.NullData)}
        status = parts[layout.status].value if layout.status is not None and layout.status < len(parts) else 0
        flags = _flags(status if isinstance(status, int) and not isinstance(status, bool) else 0)
        found.append(ProfileRecord(start=start.astimezone(UTC), length=layout.period,
                                   energy={c: round(v) for c, v in exact.items()}, flags=flags,
                                   raw=str([getattr(p, "value", None) for p in parts]), exact=exact))
    found.sort(key=lambda r: r.start)
    return found


def read_layout(session: Session) -> Layout:
    """The profile's columns, capture period and the scaler-units of its energy registers."""
    columns = parse_capture_objects(session.get(PROFILE_GENERIC, PROFILE_OBIS, CAPTURE_OBJECTS))
    period = values.decode(session.get(PROFILE_GENERIC, PROFILE_OBIS, CAPTURE_PERIOD)).value
    if isinstance(period, bool) or not isinstance(period, int):
        raise errors.protocol(f"{PROFILE_OBIS}: capture period {period!r}", errors.VALUE)
    scalers = {c.obis: values.ScalerUnit.from_bytes(session.get(c.class_id, c.obis, 3))
               for c in columns if c.obis in CHANNEL_OBIS and c.class_id in SCALED_CLASSES and c.attribute == 2}
    return layout_of(columns, period, scalers)


def read(session: Session, link: MeterLink, start: datetime, end: datetime, site: tzinfo,
         layouts: dict[str, Layout]) -> ProfileRecords:
    """The records of the intervals starting in [start, end); `layouts` caches each meter's by serial."""
    layout = layouts.get(link.serial)
    if layout is None:
        layout = layouts[link.serial] = read_layout(session)
    meter_clock = values.clock(session.get(CLOCK_CLASS, link.obis(CLOCK, CLOCK_OBIS), 2), site)
    found = ProfileRecords()
    if start < end:
        access = range_descriptor(start, end, layout.period, site, layout.clock_obis)
        buffer = session.get(PROFILE_GENERIC, PROFILE_OBIS, BUFFER, access)
        found.extend(r for r in records_from_buffer(buffer, layout, site) if start <= r.start < end)
    found.complete_until = floor_interval(meter_clock, layout.period)  # a period the meter has not closed yet
    return found


class DlmsProfiles(ProfileReader):
    """The ``profiles`` capability of the DLMS drivers (uses the driver's threads and zone)."""

    workers: Workers
    tz: tzinfo
    _layouts: dict[str, Layout]

    def memory_depth(self, meter: MeterConfig) -> timedelta:
        """120 days, or the meter's ``profile_depth``."""
        return DlmsMeterSettings.of(meter).profile_depth or DEFAULT_DEPTH

    async def read_profile(self, meter: MeterConfig, start: datetime, end: datetime) -> list[ProfileRecord]:
        """The records of [start, end) in one association, in one of the bus's threads."""
        from amr.drivers.dlms import operations

        layouts = self.__dict__.setdefault("_layouts", {})
        work = partial(read, start=start, end=end, site=self.tz, layouts=layouts)
        return await self.workers.run(operations.in_session, self, meter, work)


__all__ = ["DlmsProfiles", "Layout", "clock_range", "parse_capture_objects", "range_descriptor", "read",
           "records_from_buffer"]
