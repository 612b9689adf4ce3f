"""Макет 80020: the wholesale-market exchange XML of half-hour energy per metering point.

Layout (windows-1251)::

    <message class="80020" version="2" number="N">
      <datetime><timestamp>YYYYMMDDhhmmss</timestamp><daylightsavingtime>0</daylightsavingtime>
                <day>YYYYMMDD</day></datetime>
      <sender><inn>…</inn><name>…</name></sender>
      <area><inn>…</inn><name>…</name>
        <measuringpoint code="…" name="…">
          <measuringchannel code="01" desc="Активная прием">
            <period start="0000" end="0030"><value status="0">12</value></period>
            … 48 periods, the last 2330 → 0000
          </measuringchannel>
          … channels 02 (A-), 03 (R+), 04 (R-)
        </measuringpoint>
      </area>
    </message>

Choices (documented in the README of the API):

* ``value`` is the half-hour's energy in whole kWh (kvarh for 03/04) at the primary side, as
  the format's published examples show. Rounding carries the remainder forward within a
  channel's day (each value is the rounded running total minus the previous rounded running
  total), so the 48 values add up to the day's total rounded to a kWh and each differs from the
  exact half-hour by less than 1 kWh.
* Where a metering point's meters have interval data (load profiles), a half-hour whose intervals
  are all known is taken from them: ``status="0"`` when every one is measured (read from the
  meter, or derived from its registers), ``status="1"`` when one is estimated, incomplete (the
  meter's status bits) or a dispatcher's substitution. Otherwise the half-hour comes from the
  register readings: ``status="0"`` when they cover it fully (commercial data), ``status="1"``
  when they do not (a gap: missing or partial readings; the value is then what the covered part
  gave, 0 with no data). Readings are never interpolated here.
* ``daylightsavingtime`` is 1 when the site's zone is on summer time at the file's timestamp,
  else 0 (Russian zones have none since 2011). ``timestamp`` is the file's local creation time;
  ``day`` the reported day in the site's zone.
* The measuring point ``code`` is ``[export] point_codes[point]`` (e.g. the 18-digit АТС code),
  else the metering point's own code; ``name`` is "object, meter name". A point whose meter was
  replaced during the day sums both meters' series (never comparing them).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from amr.config import ExportConfig
from amr.core.domain import Channel, StoredReading
from amr.core.meters import Meter
from amr.outputs.consumption import Bucket, Step, boundaries, consumption
from amr.outputs.intervals import apply_intervals, consumption_covers
from amr.store import Store

ENCODING = "windows-1251"
CHANNELS_80020: tuple[tuple[str, Channel, str], ...] = (
    ("01", Channel.A_PLUS, "Активная прием"),
    ("02", Channel.A_MINUS, "Активная отдача"),
    ("03", Channel.R_PLUS, "Реактивная прием"),
    ("04", Channel.R_MINUS, "Реактивная отдача"),
)
STATUS_OK = "0"
STATUS_GAP = "1"


@dataclass(frozen=True, slots=True)
class Period:
    """One half-hour: local start and end as HHMM, whole kWh (or kvarh) and status."""

    start: str
    end: str
    value: int
    status: str


@dataclass(frozen=True, slots=True)
class MeasuringPoint:
    """A metering point with its four channels of half-hour periods."""

    code: str
    name: str
    channels: tuple[tuple[str, str, tuple[Period, ...]], ...]  # (code, desc, periods)


def day_span(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The day's [start, end) in UTC, midnight to midnight in the site's zone."""
    start = datetime.combine(day, time(), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC)
    return start, end


def _round_kwh(wh: int) -> int:
    return (wh + 500) // 1000


def periods(
    buckets: Sequence[Bucket], tz: ZoneInfo, statuses: Sequence[str | None] | None = None
) -> tuple[Period, ...]:
    """Half-hour buckets as 80020 periods with carried rounding (see the module's notes); `statuses`
    gives a bucket's status where its intervals decide it (None: by its readings)."""
    found = []
    running = 0
    emitted = 0
    for index, bucket in enumerate(buckets):
        status = statuses[index] if statuses is not None else None
        if status is None:
            status = STATUS_OK if bucket.complete and bucket.value is not None else STATUS_GAP
        running += bucket.value or 0
        total = _round_kwh(running)
        found.append(
            Period(
                start=bucket.start.astimezone(tz).strftime("%H%M"),
                end=bucket.end.astimezone(tz).strftime("%H%M"),
                value=total - emitted,
                status=status,
            )
        )
        emitted = total
    return tuple(found)


def channel_periods(
    store: Store, group: Sequence[Meter], series: Sequence[tuple[Meter, Sequence[StoredReading]]],
    channel: Channel, edges: Sequence[datetime], tz: ZoneInfo, now: datetime,
) -> tuple[Period, ...]:
    """One channel's periods: from the meters' intervals where they cover a half-hour (status 0 only
    when every one is measured), else from their readings."""
    buckets = consumption(series, channel, edges)
    covers = consumption_covers(store, group, channel, 0, buckets, now)
    if covers is None:
        return periods(buckets, tz)
    basis = apply_intervals(buckets, covers)
    statuses: list[str | None] = []
    for bucket, how, cover in zip(buckets, basis, covers, strict=True):
        if how != "intervals" or cover is None:
            statuses.append(None)
        else:
            statuses.append(STATUS_OK if cover.all_measured and bucket.complete else STATUS_GAP)
    return periods(buckets, tz, statuses)


def measuring_points(
    store: Store,
    meters: Sequence[Meter],
    day: date,
    tz: ZoneInfo,
    codes: Mapping[str, str],
    now: datetime | None = None,
) -> list[MeasuringPoint]:
    """The metering points of `meters` in service on `day`, with their half-hour energy per channel
    (`now`: intervals after it are not yet due, so not missing)."""
    moment = now or datetime.now(UTC)
    start, end = day_span(day, tz)
    edges = boundaries(start, end, Step.HALF_HOUR, tz)
    by_point: dict[str, list[Meter]] = {}
    for meter in meters:
        if meter.installed is not None and meter.installed >= end:
            continue
        if meter.removed is not None and meter.removed < start:
            continue
        by_point.setdefault(meter.point, []).append(meter)
    points = []
    for point in sorted(by_point):
        group = sorted(by_point[point], key=lambda m: (m.installed is not None, m.installed))
        series = [(m, store.consumption_series(m, 0, Step.HALF_HOUR, edges[0], edges[-1])) for m in group]
        latest = group[-1]
        name = ", ".join(p for p in (latest.object, latest.name) if p)
        channels = tuple(
            (code, desc, channel_periods(store, group, series, channel, edges, tz, moment))
            for code, channel, desc in CHANNELS_80020
        )
        points.append(MeasuringPoint(codes.get(point, point), name, channels))
    return points


def render(
    number: int, created: datetime, day: date, tz: ZoneInfo, export: ExportConfig, points: Sequence[MeasuringPoint]
) -> bytes:
    """The XML document in windows-1251 (characters outside it become character references)."""
    message = ET.Element("message", {"class": "80020", "version": "2", "number": str(number)})
    moment = created.astimezone(tz)
    stamp = ET.SubElement(message, "datetime")
    ET.SubElement(stamp, "timestamp").text = moment.strftime("%Y%m%d%H%M%S")
    ET.SubElement(stamp, "daylightsavingtime").text = "1" if moment.dst() else "0"
    ET.SubElement(stamp, "day").text = day.strftime("%Y%m%d")
    sender = ET.SubElement(message, "sender")
    ET.SubElement(sender, "inn").text = export.sender_inn
    ET.SubElement(sender, "name").text = export.sender_name
    area = ET.SubElement(message, "area")
    ET.SubElement(area, "inn").text = export.area_inn
    ET.SubElement(area, "name").text = export.area_name
    for point in points:
        node = ET.SubElement(area, "measuringpoint", {"code": point.code, "name": point.name})
        for code, desc, found in point.channels:
            channel = ET.SubElement(node, "measuringchannel", {"code": code, "desc": desc})
            for item in found:
                period = ET.SubElement(channel, "period", {"start": item.start, "end": item.end})
                ET.SubElement(period, "value", {"status": item.status}).text = str(item.value)
    ET.indent(message)
    body: bytes = ET.tostring(message, encoding=ENCODING, xml_declaration=False)
    return f'<?xml version="1.0" encoding="{ENCODING}"?>\n'.encode("ascii") + body + b"\n"


def build_80020(
    store: Store,
    meters: Sequence[Meter],
    day: date,
    tz: ZoneInfo,
    export: ExportConfig,
    number: int,
    created: datetime,
) -> bytes:
    """A complete макет 80020 for `day` over the metering points of `meters`."""
    points = measuring_points(store, meters, day, tz, export.point_codes, created)
    return render(number, created, day, tz, export, points)
