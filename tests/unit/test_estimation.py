"""Estimation of missing intervals: exact split, shape of similar days, linear, real counts on DST days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from amr.config import IntervalsConfig
from amr.core.domain import Channel, StoredReading
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.validation.estimation import Estimator, find_gaps, split_exact
from tests.support.builders import meters

HALF = timedelta(minutes=30)
MOSCOW = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 3, 30, 21, tzinfo=UTC)  # Tuesday 00:00 in Moscow


def iv(at: datetime, wh: int, channel: Channel = Channel.A_PLUS) -> IntervalValue:
    return IntervalValue("E1", channel, at, HALF, wh, IntervalStatus.MEASURED, IntervalSource.PROFILE, at)


def reading(at: datetime, wh: int) -> StoredReading:
    return StoredReading(1, at, 0, {Channel.A_PLUS: wh}, "askue:modbus", 0, at)


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**6), min_size=1, max_size=60))
def test_the_split_adds_up_exactly_and_stays_within_one_of_the_exact_share(total: int, raw: list[int]) -> None:
    weights = [Fraction(w) for w in raw]
    if not any(weights):
        weights = [Fraction(1)] * len(weights)
    shares = split_exact(total, weights)
    assert sum(shares) == total
    whole = sum(weights)
    assert all(abs(s - total * w / whole) < 1 for s, w in zip(shares, weights, strict=True))


def test_largest_remainders_get_the_leftover() -> None:
    assert split_exact(10, [Fraction(1)] * 3) == [4, 3, 3]
    assert split_exact(100, [Fraction(1), Fraction(2), Fraction(3)]) == [17, 33, 50]


def test_gaps_are_runs_of_missing_intervals() -> None:
    values = [iv(T0 + i * HALF, 1) for i in (0, 1, 4, 5, 9)]
    gaps = find_gaps(values, Channel.A_PLUS, T0, T0 + 10 * HALF, HALF)
    assert [(g.start, len(g.starts)) for g in gaps] == [(T0 + 2 * HALF, 2), (T0 + 6 * HALF, 3)]


def _estimator(**settings: object) -> Estimator:
    return Estimator(IntervalsConfig(**settings), MOSCOW)  # type: ignore[arg-type]


def test_a_gap_is_spread_linearly_to_the_register_delta_exactly() -> None:
    [meter] = meters({"serial": "E1"})
    known = [iv(T0 + i * HALF, 100) for i in range(10) if i not in (3, 4, 5)]
    readings = [reading(T0 + 2 * HALF, 10_000), reading(T0 + 7 * HALF, 11_201)]  # 2 known + 3 missing
    result = _estimator().estimate(meter, known, readings, T0, T0 + 10 * HALF, T0)
    assert [v.wh for v in result.values] == [334, 334, 333]
    assert sum(v.wh for v in result.values) + 2 * 100 == 11_201 - 10_000
    assert all(v.status is IntervalStatus.ESTIMATED and v.method == "linear" for v in result.values)
    assert [m for _, m in result.filled] == ["linear"]


def test_a_gap_follows_the_shape_of_the_same_weekday_in_previous_weeks() -> None:
    [meter] = meters({"serial": "E1"})
    history = []
    for week in (1, 2):
        for i in range(6):
            history.append(iv(T0 - week * timedelta(days=7) + i * HALF, [0, 0, 10, 20, 30, 0][i] * week))
    today = [iv(T0 + i * HALF, 0) for i in (0, 1, 5)]
    readings = [reading(T0 + 2 * HALF, 5_000), reading(T0 + 5 * HALF, 5_600)]
    result = _estimator().estimate(meter, history + today, readings, T0, T0 + 6 * HALF, T0)
    assert [v.wh for v in result.values] == [100, 200, 300]
    assert [m for _, m in result.filled] == ["shape"]


def test_gaps_without_readings_on_both_sides_or_too_long_are_left_with_why() -> None:
    [meter] = meters({"serial": "E1"})
    known = [iv(T0, 1), iv(T0 + 20 * HALF, 1)]
    result = _estimator(estimate_max_gap="2h").estimate(
        meter, known, [reading(T0, 0), reading(T0 + 20 * HALF, 99)], T0, T0 + 21 * HALF, T0
    )
    assert result.values == [] and "estimate_max_gap" in result.left[0][1]
    short = [iv(T0, 1), iv(T0 + 2 * HALF, 1)]
    result = _estimator().estimate(meter, short, [reading(T0, 0)], T0, T0 + 3 * HALF, T0)
    assert result.values == [] and "both sides" in result.left[0][1]


def test_a_day_with_a_clock_change_keeps_its_real_number_of_intervals() -> None:
    """Europe/Berlin's spring day has 23 hours: estimation fills 46 half-hours, not 48."""
    berlin = ZoneInfo("Europe/Berlin")
    day = datetime(2026, 3, 29, tzinfo=berlin).astimezone(UTC)
    day_end = datetime(2026, 3, 30, tzinfo=berlin).astimezone(UTC)
    [meter] = meters({"serial": "E1"})
    edges = [iv(day - HALF, 10), iv(day_end, 10)]
    readings = [reading(day, 0), reading(day_end, 4600)]
    estimator = Estimator(IntervalsConfig(estimate_max_gap=timedelta(days=1)), berlin)
    result = estimator.estimate(meter, edges, readings, day, day_end, day)
    assert len(result.values) == 46 and sum(v.wh for v in result.values) == 4600
