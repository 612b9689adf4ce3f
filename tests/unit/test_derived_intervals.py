"""Intervals derived from register readings: what counts as an edge, settled edges, exact energy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from amr.core.domain import Channel, StoredReading
from amr.core.intervals import IntervalSource, IntervalStatus
from amr.validation.derived import derive, edge_values
from tests.support.builders import meters

HALF = timedelta(minutes=30)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOL = timedelta(minutes=1)


def reading(at: datetime, wh: int, r_plus: int | None = None) -> StoredReading:
    values = {Channel.A_PLUS: wh} if r_plus is None else {Channel.A_PLUS: wh, Channel.R_PLUS: r_plus}
    return StoredReading(1, at, 0, values, "askue:modbus", 0, at)


def test_an_edge_takes_the_nearest_reading_within_the_tolerance() -> None:
    readings = [
        reading(T0 - timedelta(seconds=50), 1_000),
        reading(T0 + timedelta(seconds=20), 1_010),  # the nearest to T0
        reading(T0 + HALF - timedelta(seconds=61), 2_000),  # just outside the tolerance of T0 + 30 min
        reading(T0 + 2 * HALF + timedelta(seconds=30), 3_000),
        reading(T0 + 2 * HALF - timedelta(seconds=30), 2_990),  # a tie: the earlier one wins
    ]
    readings.sort(key=lambda r: r.ts)
    found = edge_values(readings, Channel.A_PLUS, [T0, T0 + HALF, T0 + 2 * HALF], TOL)
    assert found == {T0: 1_010, T0 + 2 * HALF: 2_990}


def test_intervals_between_two_edges_are_the_exact_register_delta() -> None:
    [meter] = meters({"serial": "M1", "ct_ratio": 40})
    readings = [
        reading(T0 + timedelta(seconds=5), 10_000_000, 500_000),
        reading(T0 + timedelta(minutes=13), 10_300_000, 600_000),  # between edges: not used
        reading(T0 + HALF, 10_812_345, 777_777),
        reading(T0 + 2 * HALF - timedelta(seconds=40), 11_000_000),  # R+ absent: A+ only
        reading(T0 + 4 * HALF, 12_000_000, 900_000),  # T0 + 90 min has no reading: no interval on either side
    ]
    now = T0 + 4 * HALF + TOL + timedelta(seconds=1)
    values = derive(meter, readings, T0, T0 + 6 * HALF, now, TOL)
    got = [(v.channel, v.start, v.wh) for v in values]
    assert got == [
        (Channel.A_PLUS, T0, 812_345),
        (Channel.A_PLUS, T0 + HALF, 187_655),
        (Channel.R_PLUS, T0, 277_777),
    ]
    assert all(v.status is IntervalStatus.MEASURED and v.source is IntervalSource.DERIVED for v in values)
    assert all(v.method == "registers" and v.length == HALF for v in values)


def test_an_edge_is_used_only_once_no_nearer_reading_can_come() -> None:
    [meter] = meters({"serial": "M1"})
    readings = [reading(T0, 1_000), reading(T0 + HALF - timedelta(seconds=10), 2_000)]
    # 20 s after the edge a poll 5 s after it may still come: not settled
    assert derive(meter, readings, T0, T0 + HALF, T0 + HALF + timedelta(seconds=20), TOL) == []
    [value] = derive(meter, readings, T0, T0 + HALF, T0 + HALF + TOL + timedelta(seconds=1), TOL)
    assert value.wh == 1_000


def test_a_register_going_down_or_a_ratio_change_derives_nothing() -> None:
    [meter] = meters({"serial": "M1"})
    later = T0 + 3 * HALF
    down = [reading(T0, 5_000), reading(T0 + HALF, 4_000)]
    assert derive(meter, down, T0, T0 + HALF, later, TOL) == []
    [changed] = meters(
        {"serial": "M2", "ct_ratio": [{"ratio": 10}, {"since": "2026-03-02T09:20:00+00:00", "ratio": 20}]}
    )
    assert derive(changed, [reading(T0, 5_000), reading(T0 + HALF, 6_000)], T0, T0 + HALF, later, TOL) == []
