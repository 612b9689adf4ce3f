"""Validation of interval data, beside the register rules: stable reason codes of `Reason`.

| code | verdict | rule |
|---|---|---|
| `negative` | refused | an interval's energy is below zero (checked by the store itself) |
| `above_capacity` | refused | more energy than the meter can pass in the interval: rated power × CT × VT × length |
| `duplicate` | no-op | the same value is stored (the store counts it) |
| `conflict` | refused | an equally good source stored another value (the store refuses it) |
| `sum_mismatch` | flagged | the intervals between two register readings do not add up to the register delta |

The rated power is the meter's own (`max_power_kw`), else its model's
(``[intervals] model_rated_power_kw``), else ``[intervals] rated_power_kw``: secondary side,
turned to the primary side by the ratio in force at the interval's start.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from amr.config import IntervalsConfig
from amr.core.domain import Channel, StoredReading
from amr.core.intervals import IntervalValue
from amr.core.meters import WH_PER_KWH, Meter
from amr.validation.reasons import Reason

HOUR_S = 3600


class IntervalRules:
    """The per-value rules of intervals (`amr.store.intervals.Check`): today the meter's capacity."""

    def __init__(self, meters: Iterable[Meter], config: IntervalsConfig | None = None) -> None:
        self.config = config or IntervalsConfig()
        self.meters = {m.serial: m for m in meters}
        self._limits: dict[tuple[str, timedelta], Fraction] = {}

    def rated_power_kw(self, meter: Meter) -> Fraction:
        """The meter's rated power in kW at the secondary side (its own, its model's, or the default)."""
        if meter.max_power_kw is not None:
            return Fraction(meter.max_power_kw)
        by_model = self.config.model_rated_power_kw.get(meter.model)
        return Fraction(by_model if by_model is not None else self.config.rated_power_kw)

    def limit_wh(self, meter: Meter, start: datetime, length: timedelta) -> Fraction:
        """The most energy (primary Wh) the meter can pass in the interval at its rated power."""
        single = len(meter.ratios) == 1
        cached = self._limits.get((meter.serial, length)) if single else None
        if cached is not None:
            return cached
        hours = Fraction(int(length.total_seconds()), HOUR_S)
        limit = self.rated_power_kw(meter) * WH_PER_KWH * meter.ratio_at(start) * hours
        if single:
            self._limits[(meter.serial, length)] = limit
        return limit

    def __call__(self, value: IntervalValue, meter_id: int) -> list[tuple[Reason, str]]:
        """The reasons `value` is refused for (empty when none)."""
        meter = self.meters.get(value.serial)
        if meter is None:
            return []
        limit = self.limit_wh(meter, value.start, value.length)
        if value.wh > limit:
            power = self.rated_power_kw(meter)
            return [
                (
                    Reason.ABOVE_CAPACITY,
                    f"{value.channel.value} {value.wh} Wh in {value.length} is more than the meter passes at "
                    f"{float(power):g} kW × ratio {float(meter.ratio_at(value.start)):g} ({int(limit)} Wh)",
                )
            ]
        return []


@dataclass(frozen=True, slots=True)
class SumMismatch:
    """Intervals between two register readings that do not add up to the register delta."""

    channel: Channel
    start: datetime  # the earlier reading's time
    end: datetime  # the later reading's time
    register_wh: int  # the register delta (primary)
    intervals_wh: int  # the intervals' energy within the two times (pro rata at the edges)
    tolerance_wh: int  # the register's resolution at the primary side, twice (one step per reading)

    @property
    def reason(self) -> Reason:
        """Always `Reason.SUM_MISMATCH`."""
        return Reason.SUM_MISMATCH


def resolution_wh(meter: Meter, at: datetime) -> Fraction:
    """One step of the register's last decimal, in primary Wh."""
    return Fraction(WH_PER_KWH, 10**meter.decimals) * meter.ratio_at(at)


def energy_between(intervals: Sequence[IntervalValue], start: datetime, end: datetime) -> Fraction | None:
    """The intervals' energy within [start, end], each counted pro rata to its overlap; None when an
    instant of it is covered by no interval (a gap: nothing to compare)."""
    total = Fraction(0)
    covered = start
    for v in intervals:
        if v.end <= start or v.start >= end:
            continue
        if v.start > covered:
            return None
        lo, hi = max(v.start, start), min(v.end, end)
        total += Fraction(v.wh) * Fraction(int((hi - lo).total_seconds()), int(v.length.total_seconds()))
        covered = max(covered, v.end)
    return total if covered >= end else None


def sum_check(
    meter: Meter, channel: Channel, intervals: Sequence[IntervalValue], readings: Sequence[StoredReading]
) -> list[SumMismatch]:
    """Compare the intervals (of one channel, in time order) with each pair of consecutive register
    readings (tariff 0, in time order) that has the channel and is wholly covered by intervals.

    A pair whose register went down (a wrap or a replaced register) is skipped. The tolerance is one
    step of the register's resolution per reading, so registers read to 0.01 kWh behind a ratio of
    40 allow 2 × 400 Wh."""
    found: list[SumMismatch] = []
    points = [(r.ts, r.values.get(channel)) for r in readings if r.tariff == 0 and r.values.get(channel) is not None]
    for (t1, v1), (t2, v2) in zip(points, points[1:], strict=False):
        if v1 is None or v2 is None or v2 < v1 or t2 <= t1:
            continue
        energy = energy_between(intervals, t1, t2)
        if energy is None:
            continue
        tolerance = resolution_wh(meter, t1) + resolution_wh(meter, t2)
        delta = v2 - v1
        if abs(energy - delta) > tolerance:
            found.append(SumMismatch(channel, t1, t2, delta, round(energy), int(tolerance)))
    return found
