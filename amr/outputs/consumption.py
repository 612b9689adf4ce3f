"""Consumption over periods in the site's time zone: 30 minutes, hour, day, billing month.

A bucket's consumption is the sum of the intervals between consecutive accepted
readings that lie wholly inside it, per meter series (readings of two meters on one
metering point are never compared). A bucket is complete when those intervals cover
it from start to end; what they do not cover is reported as gaps, never invented.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from amr.core.domain import Channel, Flag, StoredReading
from amr.core.energy import consumption_wh
from amr.core.meters import Meter
from amr.errors import InputError


class Step(str, enum.Enum):
    """Bucket sizes."""

    HALF_HOUR = "30min"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


@dataclass(slots=True)
class Bucket:
    """Consumption in [start, end); `value` is None when no interval lies inside."""

    start: datetime
    end: datetime
    value: int | None = None
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    covered: list[tuple[datetime, datetime]] = field(default_factory=list, repr=False)

    @property
    def complete(self) -> bool:
        """True when readings cover the whole bucket."""
        return not self.gaps


def _clock(moment: datetime, day: date) -> str:
    """HH:MM of a local `moment` counted on `day`: the midnight that ends `day` is 24:00."""
    if moment.date() == day + timedelta(days=1) and moment.time() == time():
        return "24:00"
    return moment.strftime("%H:%M")


def gap_text(bucket: Bucket, gap: tuple[datetime, datetime], tz: ZoneInfo) -> str:
    """A gap of `bucket` as a person reads it in the site's zone: ``no readings`` for the whole
    bucket, ``10:30…12:30`` (``18:00…24:00``) within one day, with dates when it spans days."""
    start, end = gap
    if start <= bucket.start and end >= bucket.end:
        return "no readings"
    first, last = start.astimezone(tz), end.astimezone(tz)
    # the day an end at midnight belongs to is the day before it
    last_day = last.date() - timedelta(days=1) if last.time() == time() and last > first else last.date()
    if first.date() == last_day:
        return f"{_clock(first, first.date())}…{_clock(last, first.date())}"
    return f"{first.date().isoformat()} {_clock(first, first.date())}…{last_day.isoformat()} {_clock(last, last_day)}"


def boundaries(start: datetime, end: datetime, step: Step, tz: ZoneInfo) -> list[datetime]:
    """Bucket edges (UTC) from `start` to `end`, aligned to `step` in the site's zone."""
    if end <= start:
        raise InputError("the period is empty: 'to' must be later than 'from'")
    local = start.astimezone(tz)
    if step in (Step.HALF_HOUR, Step.HOUR):
        minutes = 30 if step is Step.HALF_HOUR else 60
        aligned = local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0)
        edges = []
        edge_utc = aligned.astimezone(UTC)
        while True:
            edges.append(edge_utc)
            if edge_utc >= end:
                return edges
            edge_utc += timedelta(minutes=minutes)
    day = local.date()
    if step is Step.MONTH:
        day = day.replace(day=1)
    edges = []
    while True:
        edge = datetime.combine(day, time(), tz).astimezone(UTC)
        edges.append(edge)
        if edge >= end:
            return edges
        if step is Step.DAY:
            day += timedelta(days=1)
        else:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def consumption(
    series: Sequence[tuple[Meter, Sequence[StoredReading]]],
    channel: Channel,
    edges: Sequence[datetime],
) -> list[Bucket]:
    """Buckets between consecutive `edges` from each meter's accepted readings (one tariff, time order)."""
    buckets = [Bucket(s, e) for s, e in zip(edges, edges[1:], strict=False)]
    for meter, readings in series:
        points = [r for r in readings if r.values.get(channel) is not None]
        index = 0
        for prev, cur in zip(points, points[1:], strict=False):
            while index < len(buckets) and buckets[index].end < cur.ts:
                index += 1
            if index == len(buckets):
                break
            bucket = buckets[index]
            if prev.ts < bucket.start:
                continue
            prev_value, value = prev.values[channel], cur.values[channel]
            assert prev_value is not None and value is not None
            wrapped = bool(cur.flags & Flag.ROLLOVER) and meter.register_value(
                value, cur.ts
            ) < meter.register_value(prev_value, prev.ts)
            delta = consumption_wh(meter, prev.ts, prev_value, cur.ts, value, wrapped)
            bucket.value = delta if bucket.value is None else bucket.value + delta
            bucket.covered.append((prev.ts, cur.ts))
    for bucket in buckets:
        cursor = bucket.start
        for s, e in _merge(bucket.covered):
            if s > cursor:
                bucket.gaps.append((cursor, s))
            cursor = max(cursor, e)
        if cursor < bucket.end:
            bucket.gaps.append((cursor, bucket.end))
    return buckets
