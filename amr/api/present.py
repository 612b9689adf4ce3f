"""Presenting domain objects in API bodies: reading ids, kWh strings, local times, periods."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from amr.api.errors import ApiError, invalid, not_found
from amr.api.schemas import ChannelValues, ReadingItem, ReasonItem, RejectedItem
from amr.core.domain import CHANNELS, TARIFFS, Channel, Flag, StoredReading, kwh_from_wh, parse_int
from amr.core.energy import consumption_wh
from amr.core.meters import Meter
from amr.core.timetext import zone_label
from amr.errors import InputError
from amr.store import RejectedRecord, Store
from amr.validation import ContextRequest, Reason, describe
from amr.validation.series import Series

UNITS_RU = {"kWh": "кВт·ч", "kvarh": "квар·ч"}
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Dates the API takes lie in [EARLIEST, LATEST) as written (a local date, or a datetime's own date,
whatever its offset): any zone conversion and a day or a month either side stay within the
calendar and the databases' ranges."""
SLACK = timedelta(days=2)
"""How far a moment of the range may lie outside it once converted to UTC (offsets reach ±24 h)."""
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.,+\-Z]*")


def kwh(value: int | None) -> str | None:
    """Wh as a kWh decimal string with three places (None stays None)."""
    return None if value is None else str(kwh_from_wh(value))


def local(ts: datetime, tz: ZoneInfo) -> str:
    """ISO local time in the site's zone, to the second."""
    return ts.astimezone(tz).isoformat(timespec="seconds")


def human_time(ts: datetime, tz: ZoneInfo, lang: str) -> str:
    """A short local time for messages, with the zone: 05.01.2026 12:00 (MSK) (ru) or
    2026-01-05 12:00 (MSK) (en)."""
    moment = ts.astimezone(tz)
    text = moment.strftime("%d.%m.%Y %H:%M") if lang == "ru" else moment.strftime("%Y-%m-%d %H:%M")
    return f"{text} ({zone_label(ts, tz)})"


def unit_text(channel: Channel, lang: str) -> str:
    """kWh / kvarh, in Russian as кВт·ч / квар·ч."""
    return UNITS_RU[channel.unit] if lang == "ru" else channel.unit


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")


def reading_id(serial: str, tariff: int, ts: datetime) -> str:
    """An opaque, stable id of an accepted reading, derived from (meter, tariff, ts)."""
    micros = int((ts - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    return _b64(f"{serial}|{tariff}|{micros}")


def parse_reading_id(text: str) -> tuple[str, int, datetime]:
    """(serial, tariff, ts) of a reading id; 404 not found when it is not one."""
    try:
        serial, tariff_text, micros = _unb64(text).rsplit("|", 2)
        tariff = parse_int(tariff_text)
        ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=parse_int(micros))
    except (ValueError, UnicodeError, binascii.Error, OverflowError, InputError):
        raise not_found("no such reading", "показание не найдено") from None
    if tariff not in TARIFFS or not within_range(ts) or not serial.isprintable():
        raise not_found("no such reading", "показание не найдено")
    return serial, tariff, ts


def encode_cursor(ts: datetime, tariff: int) -> str:
    """A page cursor after the reading (ts, tariff)."""
    return _b64(f"{ts.isoformat()}|{tariff}")


def decode_cursor(text: str) -> tuple[datetime, int]:
    """The (ts, tariff) in a page cursor; 422 when it is not one."""
    try:
        moment, tariff_text = _unb64(text).rsplit("|", 1)
        ts = datetime.fromisoformat(moment)
        tariff = parse_int(tariff_text)
        if ts.tzinfo is None or tariff not in TARIFFS:
            raise ValueError(moment)
        ts = ts.astimezone(UTC)
        if not within_range(ts):
            raise ValueError(moment)
        return ts, tariff
    except (ValueError, UnicodeError, binascii.Error, OverflowError, InputError):
        raise invalid(
            "cursor",
            "is not a cursor from this API; pass next_cursor of the previous page",
            "это не курсор этого API; передайте next_cursor предыдущей страницы",
            code="invalid_cursor",
        ) from None


def channel_values(values: Mapping[Channel, int | None]) -> ChannelValues:
    """Values per channel as kWh strings."""
    return ChannelValues(**{c.value: kwh(values.get(c)) for c in CHANNELS})


def reason_item(code: str, lang: str) -> ReasonItem:
    """A reason code with its description in `lang` (an unknown code describes itself)."""
    try:
        return ReasonItem(code=code, message=describe(Reason(code), lang))
    except ValueError:
        return ReasonItem(code=code, message=code)


def rejected_item(record: RejectedRecord, lang: str) -> RejectedItem:
    """A refused reading as the API shows it."""
    return RejectedItem(
        id=record.id,
        meter=record.meter_serial,
        timestamp=record.ts,
        tariff=record.tariff,
        values=channel_values(record.values),
        source=record.source,
        reasons=[reason_item(c, lang) for c in record.reasons],
        message=record.message,
        status=record.status,
        received_at=record.received_at,
        resolved_by=record.resolved_by,
        resolved_at=record.resolved_at,
        resolution=record.resolution,
    )


def reading_item(
    meter: Meter, reading: StoredReading, tz: ZoneInfo, consumption: Mapping[Channel, int] | None = None
) -> ReadingItem:
    """An accepted reading for the API."""
    moment = reading.ts.astimezone(tz)
    return ReadingItem(
        id=reading_id(meter.serial, reading.tariff, reading.ts),
        meter=meter.serial,
        timestamp=reading.ts,
        local_time=moment.isoformat(timespec="seconds"),
        billing_month=moment.strftime("%Y-%m"),
        tariff=reading.tariff,
        values=channel_values(reading.values),
        consumption=channel_values(consumption or {}),
        source=reading.source,
        flags=Flag.names(reading.flags),
        received_at=reading.received_at,
    )


def consumption_since_previous(
    store: Store, meter: Meter, readings: Sequence[StoredReading]
) -> dict[tuple[int, datetime], dict[Channel, int]]:
    """For each reading, per channel, the energy since the previous accepted reading of its series
    (whatever its source), in one query for all of them."""
    spans: dict[int, tuple[datetime, datetime]] = {}
    for r in readings:
        start, end = spans.get(r.tariff, (r.ts, r.ts))
        spans[r.tariff] = (min(start, r.ts), max(end, r.ts))
    if not spans:
        return {}
    context = store.load_context([ContextRequest(meter.id, t, s, e) for t, (s, e) in spans.items()])
    result: dict[tuple[int, datetime], dict[Channel, int]] = {}
    for tariff in spans:
        series = Series(list(context.get((meter.id, tariff), ())))
        for r in (x for x in readings if x.tariff == tariff):
            found: dict[Channel, int] = {}
            for channel in CHANNELS:
                value = r.values.get(channel)
                prev = series.previous(channel, r.ts) if value is not None else None
                if prev is None or value is None:
                    continue
                prev_value = prev.values[channel]
                assert prev_value is not None
                wrapped = bool(r.flags & Flag.ROLLOVER) and meter.register_value(value, r.ts) < meter.register_value(
                    prev_value, prev.ts
                )
                found[channel] = consumption_wh(meter, prev.ts, prev_value, r.ts, value, wrapped)
            result[(tariff, r.ts)] = found
    return result


def _out_of_range(field: str) -> ApiError:
    return invalid(
        field,
        f"is out of range; give a date from {EARLIEST:%Y-%m-%d} to {LATEST - timedelta(days=1):%Y-%m-%d}",
        f"вне допустимого диапазона; укажите дату с {EARLIEST:%Y-%m-%d} по {LATEST - timedelta(days=1):%Y-%m-%d}",
    )


def within_range(moment: datetime) -> bool:
    """Whether `moment` is a moment of a date in [EARLIEST, LATEST) in some zone."""
    return EARLIEST - SLACK <= moment <= LATEST + SLACK


def in_range(moment: datetime, field: str) -> datetime:
    """`moment` when `within_range`; 422 naming `field` otherwise."""
    if not within_range(moment):
        raise _out_of_range(field)
    return moment


def parse_day(text: str, field: str) -> date:
    """A calendar day YYYY-MM-DD within the supported range; 422 naming `field` otherwise."""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise invalid(
            field, f"{text!r} is not a date; write YYYY-MM-DD", f"{text!r} — не дата; пишите ГГГГ-ММ-ДД"
        ) from None
    if not EARLIEST.date() <= day < LATEST.date():
        raise _out_of_range(field)
    return day


def parse_moment(text: str, field: str, tz: ZoneInfo, *, end: bool = False) -> datetime:
    """A date (site's zone; as an end, the whole day is included) or an ISO datetime, as UTC."""
    if len(text) == 10:
        day = parse_day(text, field) + (timedelta(days=1) if end else timedelta())
        return datetime.combine(day, time(), tz).astimezone(UTC)
    try:
        if not _MOMENT.fullmatch(text):
            raise ValueError(text)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(
            field,
            f"{text!r} is not a date (2026-01-31) or an ISO datetime (2026-01-31T12:00+03:00)",
            f"{text!r} — не дата (2026-01-31) и не дата-время ISO (2026-01-31T12:00+03:00)",
        ) from None
    if not EARLIEST.date() <= value.date() < LATEST.date():
        raise _out_of_range(field)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return in_range(value.astimezone(UTC), field)


def parse_month(text: str, field: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A billing month YYYY-MM as [start, end) in UTC (month boundaries in the site's zone)."""
    if not _MONTH.fullmatch(text):
        raise invalid(field, f"{text!r} is not a month; write YYYY-MM", f"{text!r} — не месяц; пишите ГГГГ-ММ")
    first = parse_day(f"{text}-01", field)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (
        datetime.combine(first, time(), tz).astimezone(UTC),
        in_range(datetime.combine(following, time(), tz).astimezone(UTC), field),
    )


def period(start: str | None, end: str | None, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """``from``/``to`` query values as UTC [start, end); 422 when ``to`` is not after ``from``."""
    begin = parse_moment(start, "from", tz) if start else None
    finish = parse_moment(end, "to", tz, end=True) if end else None
    if begin is not None and finish is not None and finish <= begin:
        raise invalid("to", "must be later than from", "должно быть позже from", code="invalid_period")
    return begin, finish
