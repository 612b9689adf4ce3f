"""The interval store contract: every backend (SQLite, PostgreSQL, TimescaleDB) must pass all of it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue, ProfileFlag
from amr.store import Store
from amr.validation.reasons import Reason
from tests.support.builders import NOW, T0, meters

HALF = timedelta(minutes=30)


def _meters(store: Store) -> None:
    store.sync_meters(meters({"serial": "P1", "point": "p1"}, {"serial": "P2", "point": "p2"}, ids=False))


def iv(
    slot: int,
    wh: int,
    *,
    serial: str = "P1",
    channel: Channel = Channel.A_PLUS,
    source: IntervalSource = IntervalSource.PROFILE,
    status: IntervalStatus | None = None,
    method: str | None = None,
    length: timedelta = HALF,
) -> IntervalValue:
    """The interval `slot` half-hours after T0."""
    if status is None:
        status = IntervalStatus.ESTIMATED if source is IntervalSource.ESTIMATED else IntervalStatus.MEASURED
    return IntervalValue(serial, channel, T0 + slot * HALF, length, wh, status, source, NOW, method)


def test_intervals_round_trip_exactly_by_channel_and_time(store: Store) -> None:
    _meters(store)
    huge = 9_000_000_000_000  # 9 GWh in one interval: needs 64 bits
    values = [
        iv(1, 120, channel=Channel.R_PLUS),
        iv(1, huge),
        iv(0, 100, status=IntervalStatus.INCOMPLETE),
        iv(0, 7, serial="P2"),
    ]
    values[2] = IntervalValue(
        "P1",
        Channel.A_PLUS,
        T0,
        HALF,
        100,
        IntervalStatus.INCOMPLETE,
        IntervalSource.PROFILE,
        NOW,
        flags=ProfileFlag.POWER_FAILURE | ProfileFlag.PARTIAL,
    )
    result = store.write_intervals(values)
    assert result.counts() == {"accepted": 4, "duplicate": 0, "replaced": 0, "refused": 0}
    stored = store.intervals("P1")
    assert [(v.channel, v.start, v.wh) for v in stored] == [
        (Channel.A_PLUS, T0, 100),
        (Channel.A_PLUS, T0 + HALF, huge),
        (Channel.R_PLUS, T0 + HALF, 120),
    ]
    assert stored[0] == values[2] and stored[0].start.tzinfo is not None
    assert stored[0].flags == ProfileFlag.POWER_FAILURE | ProfileFlag.PARTIAL
    # the window is [start, end): the interval starting at `end` is not in it
    assert [v.wh for v in store.intervals("P1", T0, T0 + HALF, [Channel.A_PLUS])] == [100]
    assert store.intervals("P1", channels=[Channel.A_MINUS]) == []
    assert store.intervals("nobody") == []


def test_the_same_values_again_are_duplicates_and_change_nothing(store: Store) -> None:
    _meters(store)
    batch = [iv(i, 100 + i) for i in range(6)]
    store.write_intervals(batch)
    again = store.write_intervals([*batch, iv(2, 102)])  # and once more within the batch
    assert again.counts() == {"accepted": 0, "duplicate": 7, "replaced": 0, "refused": 0}
    assert [v.wh for v in store.intervals("P1")] == [100, 101, 102, 103, 104, 105]
    assert store.interval_revisions("P1") == []


def test_a_measured_value_replaces_an_estimate_and_the_estimate_is_kept(store: Store) -> None:
    _meters(store)
    store.write_intervals([iv(0, 50, source=IntervalSource.ESTIMATED, method="linear"), iv(1, 60)])
    result = store.write_intervals([iv(0, 55)])
    assert result.counts()["replaced"] == 1
    [final] = store.intervals("P1", T0, T0 + HALF)
    assert (final.wh, final.status, final.source, final.method) == (
        55,
        IntervalStatus.MEASURED,
        IntervalSource.PROFILE,
        None,
    )
    [revision] = store.interval_revisions("P1")
    assert revision.kind == "replaced" and revision.value.wh == 50 and revision.value.method == "linear"
    assert revision.value.serial == "P1" and revision.value.start == T0
    # an estimate never replaces a measured value: it is a duplicate of what is known
    late = store.write_intervals([iv(1, 99, source=IntervalSource.ESTIMATED, method="shape")])
    assert late.counts() == {"accepted": 0, "duplicate": 1, "replaced": 0, "refused": 0}
    assert store.intervals("P1", T0 + HALF, T0 + 2 * HALF)[0].wh == 60
    # a newer estimate replaces an older one
    store.write_intervals([iv(5, 10, source=IntervalSource.ESTIMATED, method="linear")])
    newer = store.write_intervals([iv(5, 12, source=IntervalSource.ESTIMATED, method="shape")])
    assert newer.replaced == 1 and store.intervals("P1", T0 + 5 * HALF)[0].method == "shape"


def test_a_differing_measured_value_is_a_conflict_refused_and_kept_once(store: Store) -> None:
    _meters(store)
    store.write_intervals([iv(3, 300)])
    for _ in range(2):
        result = store.write_intervals([iv(3, 301)])
        assert result.counts() == {"accepted": 0, "duplicate": 0, "replaced": 0, "refused": 1}
        assert result.refused[0].reasons == (Reason.CONFLICT,)
        assert "300 Wh" in result.refused[0].message
    assert store.intervals("P1")[0].wh == 300
    [kept] = store.interval_revisions("P1", kind="refused")
    assert kept.value.wh == 301 and kept.reasons == ("conflict",)
    # a profile value outranks one derived from registers
    store.write_intervals([iv(4, 40, source=IntervalSource.DERIVED)])
    assert store.write_intervals([iv(4, 41)]).replaced == 1
    assert store.write_intervals([iv(4, 42, source=IntervalSource.DERIVED)]).duplicate == 1


def test_unfit_values_are_refused_with_reasons_and_kept(store: Store) -> None:
    _meters(store)
    misaligned = IntervalValue(
        "P1", Channel.A_PLUS, T0 + timedelta(minutes=10), HALF, 5, IntervalStatus.MEASURED, IntervalSource.PROFILE, NOW
    )
    result = store.write_intervals(
        [iv(0, -1), iv(1, 5, serial="ZZ"), misaligned, iv(2, 5, length=timedelta(minutes=20)), iv(3, 9)]
    )
    assert result.accepted == 1
    assert [r.reasons for r in result.refused] == [
        (Reason.NEGATIVE,),
        (Reason.UNKNOWN_METER,),
        (Reason.MALFORMED,),
        (Reason.MALFORMED,),
    ]
    kept = store.interval_revisions("P1", kind="refused")
    assert sorted(r.reasons[0] for r in kept) == ["malformed", "malformed", "negative"]
    assert [r.value.wh for r in store.interval_revisions("ZZ")] == [5]


def test_a_callers_rule_refuses_values(store: Store) -> None:
    _meters(store)

    def at_most_1000(value: IntervalValue, meter_id: int) -> list[tuple[Reason, str]]:
        assert meter_id > 0
        return [(Reason.ABOVE_CAPACITY, "over 1000 Wh")] if value.wh > 1000 else []

    result = store.write_intervals([iv(0, 1000), iv(1, 1001)], check=at_most_1000)
    assert result.accepted == 1 and result.refused[0].reasons == (Reason.ABOVE_CAPACITY,)
    assert [v.wh for v in store.intervals("P1")] == [1000]


@pytest.mark.parametrize("length", [timedelta(minutes=15), timedelta(minutes=60)])
def test_other_interval_lengths_are_kept(store: Store, length: timedelta) -> None:
    _meters(store)
    values = [
        IntervalValue(
            "P2", Channel.A_MINUS, T0 + i * length, length, i, IntervalStatus.MEASURED, IntervalSource.PROFILE, NOW
        )
        for i in range(4)
    ]
    assert store.write_intervals(values).accepted == 4
    assert [v.length for v in store.intervals("P2")] == [length] * 4
