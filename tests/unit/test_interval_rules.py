"""Interval validation rules: capacity by rated power × ratios × length, and the sum check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from amr.config import IntervalsConfig
from amr.core.domain import Channel, StoredReading
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.validation.intervals import IntervalRules, energy_between, sum_check
from amr.validation.reasons import Reason
from tests.support.builders import meters

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HALF = timedelta(minutes=30)


def iv(serial: str, slot: int, wh: int, length: timedelta = HALF) -> IntervalValue:
    return IntervalValue(
        serial, Channel.A_PLUS, T0 + slot * length, length, wh, IntervalStatus.MEASURED, IntervalSource.PROFILE, T0
    )


def test_capacity_is_rated_power_times_ratios_times_length_by_meter_model_or_default() -> None:
    own, by_model, default = meters(
        {"serial": "OWN", "max_power_kw": 10, "ct_ratio": 40, "point": "a"},
        {"serial": "MOD", "model": "Меркурий 230", "point": "b"},
        {"serial": "DEF", "vt_ratio": 100, "point": "c"},
    )
    rules = IntervalRules(
        [own, by_model, default],
        IntervalsConfig(rated_power_kw=Decimal(5), model_rated_power_kw={"Меркурий 230": Decimal(60)}),
    )
    # 10 kW × 40 × 0.5 h = 200 kWh; 60 kW × 0.5 h = 30 kWh; 5 kW × 100 × 1 h = 500 kWh
    assert rules(iv("OWN", 0, 200_000), 1) == []
    [(reason, message)] = rules(iv("OWN", 1, 200_001), 1)
    assert reason is Reason.ABOVE_CAPACITY and "200000 Wh" in message
    assert rules(iv("MOD", 0, 30_000), 2) == [] and rules(iv("MOD", 0, 30_001), 2)
    hour = timedelta(hours=1)
    assert rules(iv("DEF", 0, 500_000, hour), 3) == [] and rules(iv("DEF", 0, 500_001, hour), 3)
    assert rules(iv("DEF", 0, 125_001, timedelta(minutes=15)), 3)


def _reading(at: datetime, wh: int) -> StoredReading:
    return StoredReading(1, at, 0, {Channel.A_PLUS: wh}, "askue:modbus", 0, at)


def test_sum_check_flags_intervals_that_do_not_add_up_to_the_register_delta() -> None:
    [meter] = meters({"serial": "S", "decimals": 2, "ct_ratio": 10})  # resolution 10 Wh × 10 = 100 Wh per reading
    intervals = [iv("S", i, 1000) for i in range(8)]
    good = [_reading(T0, 50_000), _reading(T0 + 4 * HALF, 54_000)]
    assert sum_check(meter, Channel.A_PLUS, intervals, good) == []
    within = [_reading(T0, 50_000), _reading(T0 + 4 * HALF, 54_200)]  # 200 Wh off: two steps of resolution
    assert sum_check(meter, Channel.A_PLUS, intervals, within) == []
    off = [*good, _reading(T0 + 8 * HALF, 58_201)]
    [mismatch] = sum_check(meter, Channel.A_PLUS, intervals, off)
    assert (mismatch.start, mismatch.register_wh, mismatch.intervals_wh, mismatch.tolerance_wh) == (
        T0 + 4 * HALF, 4201, 4000, 200,
    )
    assert mismatch.reason is Reason.SUM_MISMATCH
    # a reading inside an interval counts that interval pro rata; a gap leaves the pair unchecked
    assert energy_between(intervals, T0 + timedelta(minutes=15), T0 + HALF) == Fraction(500)
    assert energy_between(intervals[:2] + intervals[3:], T0, T0 + 4 * HALF) is None
    gapped = [_reading(T0, 0), _reading(T0 + 8 * HALF, 99_999)]
    assert sum_check(meter, Channel.A_PLUS, intervals[:2] + intervals[3:], gapped) == []
