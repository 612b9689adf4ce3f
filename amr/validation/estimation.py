"""Estimation of missing intervals (the "E" of VEE), never silent: every value is flagged `estimated`
with its method, and a measured value that arrives later replaces it (`amr.store.intervals`).

A gap — a run of missing intervals of one channel, no longer than ``[intervals] estimate_max_gap``
— is filled from the register readings at both ends: the last reading at or before the gap and
the first at or after it. The gap's energy is the register delta less the energy of the intervals
between those readings and the gap (pro rata where a reading falls inside an interval); it is
spread over the gap

* by **shape** (method ``shape``): in proportion to the same intervals of the same weekday in the
  previous ``[intervals] shape_weeks`` weeks (the site's local time, so a week across a clock
  change keeps the hour of day), averaged over the weeks that have them — when every interval of
  the gap has at least one such week and they are not all zero;
* else **linearly** (method ``linear``): evenly, in proportion to the intervals' lengths.

The split is exact: integer Wh by the largest remainder, so the estimates add up to the gap's
energy exactly (with readings on interval boundaries, to the register delta exactly). Intervals are
aligned in UTC, so a day with a clock change keeps its real number of intervals (46 or 50 half-hours).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from amr.config import IntervalsConfig
from amr.core.domain import CHANNELS, Channel, StoredReading
from amr.core.intervals import (
    DEFAULT_INTERVAL,
    IntervalSource,
    IntervalStatus,
    IntervalValue,
    floor_interval,
)
from amr.core.meters import Meter
from amr.validation.intervals import energy_between

WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing intervals of one channel: [start, end) in steps of `length`."""

    channel: Channel
    start: datetime
    end: datetime
    length: timedelta

    @property
    def starts(self) -> list[datetime]:
        """The starts of the missing intervals."""
        count = int((self.end - self.start) / self.length)
        return [self.start + i * self.length for i in range(count)]


@dataclass(slots=True)
class Estimate:
    """What estimation made of one meter's window: values to store, and gaps left with why."""

    values: list[IntervalValue] = field(default_factory=list)
    filled: list[tuple[Gap, str]] = field(default_factory=list)  # (gap, method)
    left: list[tuple[Gap, str]] = field(default_factory=list)  # (gap, why it was not estimated)


def split_exact(total: int, weights: Sequence[Fraction]) -> list[int]:
    """`total` split in proportion to `weights` (not all zero) into integers that add up to it exactly:
    each share rounded down, and what is left given one by one to the largest remainders (the
    earlier on a tie)."""
    whole = sum(weights, Fraction(0))
    exact = [total * w / whole for w in weights]
    shares = [int(x // 1) for x in exact]
    left = total - sum(shares)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def find_gaps(
    intervals: Sequence[IntervalValue], channel: Channel, start: datetime, end: datetime, length: timedelta
) -> list[Gap]:
    """Runs of intervals of `length` within [start, end) that no stored interval of `channel` covers."""
    covered = {v.start for v in intervals if v.channel is channel}
    for v in intervals:  # a longer stored interval covers several of `length`
        if v.channel is channel and v.length > length:
            covered.update(v.start + i * length for i in range(int(v.length / length)))
    gaps: list[Gap] = []
    run: datetime | None = None
    at = floor_interval(start, length)
    while at < end:
        if at in covered:
            if run is not None:
                gaps.append(Gap(channel, run, at, length))
                run = None
        elif run is None:
            run = at
        at += length
    if run is not None:
        gaps.append(Gap(channel, run, at, length))
    return gaps


def shape_weights(gap: Gap, history: dict[datetime, int], zone: ZoneInfo, weeks: int) -> list[Fraction] | None:
    """Each missing interval's mean over the same weekday and local time of the previous `weeks`
    weeks; None when one of them has no such week or all are zero."""
    weights: list[Fraction] = []
    for at in gap.starts:
        local = at.astimezone(zone)
        seen = [history.get((local - k * WEEK).astimezone(UTC)) for k in range(1, weeks + 1)]
        known = [v for v in seen if v is not None]
        if not known:
            return None
        weights.append(Fraction(sum(known), len(known)))
    return weights if any(weights) else None


class Estimator:
    """Fills the gaps of one meter's intervals from its register readings (see the module)."""

    def __init__(self, config: IntervalsConfig, zone: ZoneInfo) -> None:
        self.config = config
        self.zone = zone

    def window(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """The span of stored intervals and readings `estimate` needs for gaps in [start, end)."""
        reach = self.config.estimate_max_gap + timedelta(days=2)
        return start - self.config.shape_weeks * WEEK - reach, end + reach

    def estimate(
        self,
        meter: Meter,
        intervals: Sequence[IntervalValue],
        readings: Sequence[StoredReading],
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> Estimate:
        """Estimates for the gaps in [start, end) of each channel the meter has intervals of.

        `intervals` are the meter's stored intervals and `readings` its accepted readings over
        `window(start, end)`, both in time order."""
        result = Estimate()
        ordered = sorted(intervals, key=lambda v: v.start)
        for channel in CHANNELS:
            own = [v for v in ordered if v.channel is channel]
            if not own:
                continue
            length = usual_length(own)
            history = {v.start: v.wh for v in own if v.status is not IntervalStatus.ESTIMATED}
            points = [r for r in readings if r.tariff == 0 and r.values.get(channel) is not None]
            for gap in find_gaps(own, channel, start, end, length):
                why = self._fill(meter, gap, own, points, history, now, result)
                if why is not None:
                    result.left.append((gap, why))
        return result

    def _fill(
        self,
        meter: Meter,
        gap: Gap,
        own: Sequence[IntervalValue],
        points: Sequence[StoredReading],
        history: dict[datetime, int],
        now: datetime,
        result: Estimate,
    ) -> str | None:
        """Estimate `gap` into `result`; the reason it cannot be, else None."""
        if gap.end - gap.start > self.config.estimate_max_gap:
            return f"longer than estimate_max_gap ({self.config.estimate_max_gap})"
        before = [r for r in points if r.ts <= gap.start]
        after = [r for r in points if r.ts >= gap.end]
        if not before or not after:
            return "no register reading on both sides of the gap"
        first, last = before[-1], after[0]
        a, b = first.values[gap.channel], last.values[gap.channel]
        assert a is not None and b is not None
        if b < a:
            return "the register went down across the gap (a wrap or a replaced register)"
        lead = energy_between(own, first.ts, gap.start) if first.ts < gap.start else Fraction(0)
        tail = energy_between(own, gap.end, last.ts) if last.ts > gap.end else Fraction(0)
        if lead is None or tail is None:
            return "other missing intervals lie between the gap and the register readings"
        energy = round(Fraction(b - a) - lead - tail)
        if energy < 0:
            return "the intervals around the gap hold more than the register delta"
        weights = shape_weights(gap, history, self.zone, self.config.shape_weeks)
        method = "shape"
        if weights is None:
            weights = [Fraction(int(gap.length.total_seconds()))] * len(gap.starts)
            method = "linear"
        shares = split_exact(energy, weights)
        result.values.extend(
            IntervalValue(
                meter.serial,
                gap.channel,
                at,
                gap.length,
                wh,
                IntervalStatus.ESTIMATED,
                IntervalSource.ESTIMATED,
                now,
                method,
            )
            for at, wh in zip(gap.starts, shares, strict=True)
        )
        result.filled.append((gap, method))
        return None


def usual_length(values: Sequence[IntervalValue]) -> timedelta:
    """The length most of `values` have (the meter's profile period); 30 minutes when there are none."""
    counts: dict[timedelta, int] = {}
    for v in values:
        counts[v.length] = counts.get(v.length, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else DEFAULT_INTERVAL
