"""Estimation run against the store: load a meter's intervals and readings, estimate, write."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from amr.config import IntervalsConfig
from amr.core.meters import Meter
from amr.store.intervals import IntervalWriteResult
from amr.store.store import Store
from amr.validation.estimation import Estimate, Estimator
from amr.validation.intervals import IntervalRules


def estimate_meter(
    store: Store,
    meter: Meter,
    config: IntervalsConfig,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    now: datetime,
    rules: IntervalRules | None = None,
) -> tuple[Estimate, IntervalWriteResult]:
    """Fill the gaps of `meter`'s intervals in [start, end) and store the estimates (a measured value
    stored meanwhile wins: the store never lets an estimate replace it)."""
    estimator = Estimator(config, zone)
    lo, hi = estimator.window(start, end)
    intervals = store.intervals(meter.serial, lo, hi)
    readings = store.readings([meter.id], lo, hi, tariff=0)
    estimate = estimator.estimate(meter, intervals, readings, start, end, now)
    written = store.write_intervals(estimate.values, check=rules or IntervalRules([meter], config), now=now)
    return estimate, written
