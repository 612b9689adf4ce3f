"""The fast path of the pipeline: a whole run of readings of one series accepted at once.

Most readings arrive in time order after everything stored for their series: a poll
every 30 minutes, a file of a month. For such a run the rules reduce to comparisons
over lists (every channel non-decreasing, within the register, within rated power),
done here with few Python operations per reading. When any of them fails the run is
judged reading by reading by the full pipeline, which gives each reading its reasons;
so this path changes speed, never verdicts.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import repeat

from amr.core.domain import CHANNELS, IncomingReading
from amr.core.meters import Meter
from amr.validation.rules import MICROS_PER_HOUR
from amr.validation.series import Series

BULK_MIN = 8
"""Runs shorter than this go reading by reading (and get full detail in their outcomes)."""

_MICROSECOND = timedelta(microseconds=1)
_PROBLEMS = operator.attrgetter("problems")
_TS = operator.attrgetter("ts")
_VALUES = operator.attrgetter("values")


def acceptable_in_bulk(
    meter: Meter,
    tariff: int,
    readings: Sequence[IncomingReading],
    series: Series,
    latest_allowed: datetime,
) -> bool:
    """True when every reading of the run (sorted by time) passes every rule; False means: judge one by one."""
    first, last = readings[0].ts, readings[-1].ts
    if first is None or last is None or not 0 <= tariff <= meter.tariffs or last > latest_allowed:
        return False
    if (meter.installed is not None and first < meter.installed) or (
        meter.removed is not None and last > meter.removed
    ):
        return False
    if series.by_ts and max(series.by_ts) >= first:
        return False
    scale = meter.scale_at(first)
    if meter.scale_at(last) is not scale:
        return False
    times: list[datetime] = list(map(_TS, readings))
    if not all(map(operator.lt, times, times[1:])):
        return False
    if any(map(_PROBLEMS, readings)):
        return False
    value_maps = list(map(_VALUES, readings))
    columns: list[list[int | None]] = [list(map(dict.get, value_maps, repeat(channel))) for channel in CHANNELS]
    if all(None in column for column in columns) and not all(map(_has_value, *columns)):
        return False  # a reading without any value
    power = scale.power_w
    capacity = scale.capacity
    for channel, column in zip(CHANNELS, columns, strict=True):
        stamps: list[datetime]
        if None in column:
            if column.count(None) == len(column):
                continue  # the run has no value of this channel
            kept = [(t, v) for t, v in zip(times, column, strict=True) if v is not None]
            if not kept:
                continue
            stamps, values = [t for t, _ in kept], [v for _, v in kept]
        else:
            stamps, values = list(times), column  # type: ignore[assignment]
        prev, _ = series.around(channel, first)
        if prev is not None:
            if meter.scale_at(prev.ts) is not scale:
                return False
            stamps.insert(0, prev.ts)
            values.insert(0, prev.values[channel])  # type: ignore[arg-type]
        if min(values) < 0 or max(values) > capacity:
            return False
        if not all(map(operator.le, values, values[1:])):
            return False
        if power is not None and len(values) > 1 and not _within_power(values, stamps, power):
            return False
    return True


def _within_power(values: list[int], stamps: list[datetime], power_w: int | Fraction) -> bool:
    """True when no step of the register passes more than `power_w` could in its time (exact)."""
    deltas = list(map(operator.sub, values[1:], values))
    spans = list(map(operator.sub, stamps[1:], stamps))
    if max(deltas) * MICROS_PER_HOUR <= power_w * (min(spans) // _MICROSECOND):
        return True  # even the largest step in the shortest time is within the limit
    return all(d * MICROS_PER_HOUR <= power_w * (t // _MICROSECOND) for d, t in zip(deltas, spans, strict=True))


def _has_value(*values: int | None) -> bool:
    return any(value is not None for value in values)
