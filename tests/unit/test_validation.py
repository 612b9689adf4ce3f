"""Every VEE rule, through the real pipeline, with an in-memory store of accepted readings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from amr.core.domain import Channel, Flag, Source
from amr.validation import Pipeline, Reason
from tests.support.builders import NOW, T0, meters, reading
from tests.support.memory import MemoryLoader

BASIC = {"serial": "M1", "digits": 6, "decimals": 2, "max_power_kw": 10}


def make(*specs: dict[str, object]) -> tuple[Pipeline, MemoryLoader]:
    loader = MemoryLoader()
    built = {m.serial: m for m in meters(*(specs or (BASIC,)))}
    return Pipeline(built, loader, timedelta(minutes=5), now=lambda: NOW), loader


def submit(pipeline: Pipeline, loader: MemoryLoader, *batch):  # type: ignore[no-untyped-def]
    result = pipeline.run(list(batch))
    loader.apply(result)
    return result


def test_increasing_readings_are_accepted_with_consumption() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "100.00"))
    result = submit(pipeline, loader, reading("M1", 1, "105.50"))
    outcome = result.outcomes[0]
    assert outcome.status == "accepted"
    assert outcome.consumption[Channel.A_PLUS] == 5500
    assert outcome.previous[Channel.A_PLUS].values[Channel.A_PLUS] == 100_000


def test_lower_than_previous_is_refused_and_names_the_previous_value() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "100.00"))
    result = submit(pipeline, loader, reading("M1", 1, "99.99"))
    assert result.outcomes[0].status == "rejected"
    assert result.outcomes[0].reasons == (Reason.LOWER_THAN_PREVIOUS,)
    assert "100.000 kWh" in result.outcomes[0].message
    assert len(result.rejected) == 1 and not result.accepted


def test_rollover_at_capacity_is_accepted_and_flagged() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "999999.00"))
    result = submit(pipeline, loader, reading("M1", 1, "1.50"))
    outcome = result.outcomes[0]
    assert outcome.status == "accepted"
    assert outcome.flags & Flag.ROLLOVER
    assert outcome.reasons == (Reason.ROLLOVER,)
    assert outcome.consumption[Channel.A_PLUS] == 2500  # 999999.00 → 1000000 → 1.50


def test_wrap_with_implausible_consumption_is_lower_than_previous() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "999000.00"))
    result = submit(pipeline, loader, reading("M1", 0.5, "500.00"))  # 1500 kWh in 30 min at 10 kW
    assert result.outcomes[0].reasons == (Reason.LOWER_THAN_PREVIOUS,)


def test_a_drop_far_from_capacity_is_not_a_wrap() -> None:
    pipeline, loader = make({"serial": "M1"})  # no rated power: only the "near" test applies
    submit(pipeline, loader, reading("M1", 0, "500000.00"))
    assert submit(pipeline, loader, reading("M1", 1, "1.00")).outcomes[0].reasons == (
        Reason.LOWER_THAN_PREVIOUS,
    )


def test_late_reading_must_lie_between_its_neighbours() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "10.00"), reading("M1", 20, "20.00"))
    too_high = submit(pipeline, loader, reading("M1", 10, "25.00"))
    assert too_high.outcomes[0].reasons == (Reason.HIGHER_THAN_NEXT,)
    assert "20.000 kWh" in too_high.outcomes[0].message
    too_low = submit(pipeline, loader, reading("M1", 10, "9.00"))
    assert too_low.outcomes[0].reasons == (Reason.LOWER_THAN_PREVIOUS,)
    between = submit(pipeline, loader, reading("M1", 10, "15.00"))
    assert between.outcomes[0].status == "accepted"
    assert [r.values[Channel.A_PLUS] for r in loader.series(1)] == [10_000, 15_000, 20_000]


def test_late_reading_takes_over_the_wrap_from_its_successor() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "999998.00"), reading("M1", 2, "3.00"))
    assert loader.series(1)[1].flags & Flag.ROLLOVER
    result = submit(pipeline, loader, reading("M1", 1, "1.00"))
    assert result.outcomes[0].flags & Flag.ROLLOVER
    later = loader.series(1)[2]
    assert not later.flags & Flag.ROLLOVER
    assert later.ts in {k[2] for k in result.flag_updates}


def test_over_capacity() -> None:
    pipeline, loader = make()
    result = submit(pipeline, loader, reading("M1", 0, "1000000.00"))
    assert result.outcomes[0].reasons == (Reason.OVER_CAPACITY,)
    fits = submit(pipeline, loader, reading("M1", 0, "999999.99"))
    assert fits.outcomes[0].status == "accepted"


def test_over_capacity_is_judged_on_the_register_behind_the_ratios() -> None:
    pipeline, loader = make({"serial": "M1", "ct_ratio": 40, "vt_ratio": 100})
    fits = submit(pipeline, loader, reading("M1", 0, "3999999960.00"))  # 999999.99 kWh × 4000
    assert fits.outcomes[0].status == "accepted"
    over = submit(pipeline, loader, reading("M1", 1, "4000000000.00"))
    assert over.outcomes[0].reasons == (Reason.OVER_CAPACITY,)


def test_implausible_consumption_against_rated_power_times_ratios() -> None:
    pipeline, loader = make({"serial": "M1", "max_power_kw": 10, "ct_ratio": 40})
    submit(pipeline, loader, reading("M1", 0, "0"))
    assert submit(pipeline, loader, reading("M1", 1, "400.00")).outcomes[0].status == "accepted"  # 10 kW × 40
    result = submit(pipeline, loader, reading("M1", 2, "800.04"))
    assert result.outcomes[0].reasons == (Reason.IMPLAUSIBLE_CONSUMPTION,)


def test_late_reading_that_leaves_implausible_consumption_after_it() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "0"), reading("M1", 2, "20.00"))
    result = submit(pipeline, loader, reading("M1", 1.5, "1.00"))  # 19 kWh in 30 min > 5 kWh
    assert result.outcomes[0].reasons == (Reason.IMPLAUSIBLE_CONSUMPTION,)


def test_future_timestamp_respects_clock_tolerance() -> None:
    pipeline, loader = make()
    hours_to_now = (NOW - T0).total_seconds() / 3600
    assert (
        submit(pipeline, loader, reading("M1", hours_to_now + 4 / 60, "1")).outcomes[0].status == "accepted"
    )
    result = submit(pipeline, loader, reading("M1", hours_to_now + 6 / 60, "2"))
    assert result.outcomes[0].reasons == (Reason.FUTURE_TIMESTAMP,)


def test_service_dates() -> None:
    spec = {"serial": "M1", "installed": "2026-01-01", "removed": "2026-02-01"}
    pipeline, loader = make(spec)
    before = submit(pipeline, loader, reading("M1", -24, "1"))
    assert before.outcomes[0].reasons == (Reason.BEFORE_INSTALLATION,)
    after = submit(pipeline, loader, reading("M1", 24 * 40, "1"))
    assert after.outcomes[0].reasons == (Reason.AFTER_REMOVAL,)
    # installed at midnight Moscow time = 21:00 UTC the day before
    assert submit(pipeline, loader, reading("M1", -3, "1")).outcomes[0].status == "accepted"


@pytest.mark.parametrize(
    ("incoming", "fragment"),
    [
        (reading("M1", 0, "-1"), "negative"),
        (reading("M1", 0), "no channel has a value"),
        (reading("M1", 0, "1", tariff=3), "tariff 3"),
    ],
)
def test_malformed(incoming, fragment) -> None:  # type: ignore[no-untyped-def]
    pipeline, loader = make({"serial": "M1", "tariffs": 2})
    outcome = submit(pipeline, loader, incoming).outcomes[0]
    assert outcome.reasons == (Reason.MALFORMED,)
    assert fragment in outcome.message


def test_unknown_meter() -> None:
    pipeline, loader = make()
    result = submit(pipeline, loader, reading("NOPE", 0, "1"))
    assert result.outcomes[0].reasons == (Reason.UNKNOWN_METER,)
    assert result.rejected[0].meter_id is None


def test_duplicate_is_a_no_op_and_conflict_is_refused() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "1.00", r_plus="2.00"))
    same = submit(pipeline, loader, reading("M1", 0, "1.00", r_plus="2.00"))
    assert same.outcomes[0].status == "duplicate" and not same.accepted and not same.rejected
    other = submit(pipeline, loader, reading("M1", 0, "1.00", r_plus="2.01"))
    assert other.outcomes[0].reasons == (Reason.CONFLICT,)
    missing_channel = submit(pipeline, loader, reading("M1", 0, "1.00"))
    assert missing_channel.outcomes[0].reasons == (Reason.CONFLICT,)


def test_duplicates_within_one_batch() -> None:
    pipeline, loader = make()
    result = submit(
        pipeline, loader, reading("M1", 0, "1.00"), reading("M1", 0, "1.00"), reading("M1", 0, "2.00")
    )
    assert [o.status for o in result.outcomes] == ["accepted", "duplicate", "rejected"]


def test_meter_replaced_mid_month_starts_a_new_series() -> None:
    old = {"serial": "OLD", "point": "P", "removed": "2026-01-15T12:00:00+03:00", "max_power_kw": 10}
    new = {"serial": "NEW", "point": "P", "installed": "2026-01-15T12:00:00+03:00", "max_power_kw": 10}
    pipeline, loader = make(old, new)
    switch = T0 + timedelta(days=14, hours=9)
    result = submit(
        pipeline,
        loader,
        reading("OLD", 0, "15000.00"),
        reading("OLD", switch, "15100.00"),
        reading("NEW", switch, "0.00"),
        reading("NEW", switch + timedelta(days=1), "12.00"),
    )
    assert [o.status for o in result.outcomes] == ["accepted"] * 4
    late_old = submit(pipeline, loader, reading("OLD", switch + timedelta(hours=1), "15101.00"))
    assert late_old.outcomes[0].reasons == (Reason.AFTER_REMOVAL,)


def test_ct_ratio_change_mid_series_compares_registers_not_primary_values() -> None:
    spec = {"serial": "M1", "ct_ratio": [{"ratio": 80}, {"since": "2026-01-01T06:00:00+03:00", "ratio": 40}]}
    pipeline, loader = make(spec)
    submit(pipeline, loader, reading("M1", 0, "8000.00"))  # register 100.00 kWh at ×80
    change = submit(pipeline, loader, reading("M1", 3, "4040.00"))  # register 101.00 at ×40: primary fell
    assert change.outcomes[0].status == "accepted"
    assert (
        change.outcomes[0].consumption[Channel.A_PLUS] == 80_000
    )  # 1 kWh × 80 (ratio at the interval's start)
    really_lower = submit(pipeline, loader, reading("M1", 4, "4000.00"))  # register 100.00 < 101.00
    assert really_lower.outcomes[0].reasons == (Reason.LOWER_THAN_PREVIOUS,)


def test_each_channel_is_compared_with_its_own_previous_value() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "10.00", r_plus="5.00"))
    submit(pipeline, loader, reading("M1", 1, "11.00"))  # R+ absent
    result = submit(pipeline, loader, reading("M1", 2, "12.00", r_plus="4.00"))
    assert result.outcomes[0].reasons == (Reason.LOWER_THAN_PREVIOUS,)
    assert "R+" in result.outcomes[0].message


def test_tariffs_are_separate_series() -> None:
    pipeline, loader = make({"serial": "M1", "tariffs": 2})
    submit(pipeline, loader, reading("M1", 0, "100.00", tariff=1))
    result = submit(pipeline, loader, reading("M1", 1, "50.00", tariff=2))
    assert result.outcomes[0].status == "accepted"


def test_preview_stores_nothing() -> None:
    pipeline, loader = make()
    submit(pipeline, loader, reading("M1", 0, "100.00"))
    preview = pipeline.run([reading("M1", 1, "101.25")])
    assert preview.outcomes[0].consumption[Channel.A_PLUS] == 1250
    assert len(loader.series(1)) == 1


def test_context_is_loaded_once_per_batch() -> None:
    pipeline, loader = make({"serial": "M1"}, {"serial": "M2"})
    calls: list[int] = []
    original = loader.load_context

    def counting(requests):  # type: ignore[no-untyped-def]
        calls.append(len(requests))
        return original(requests)

    loader.load_context = counting  # type: ignore[method-assign]
    batch = [reading(m, h, str(h)) for h in range(50) for m in ("M1", "M2")]
    result = submit(pipeline, loader, *batch)
    assert result.summary().accepted == 100
    assert calls == [2]


def test_manual_sources_are_recorded() -> None:
    pipeline, loader = make()
    result = submit(pipeline, loader, reading("M1", 0, "1", source=Source.WEB))
    assert result.accepted[0].source == "web"


def test_summary_counts_every_outcome_of_a_batch() -> None:
    """Outcomes shared by a run accepted at once count once per reading, as do flags and reasons."""
    pipeline, loader = make(BASIC, {**BASIC, "serial": "M2"})
    submit(pipeline, loader, reading("M1", 0, "999999.00"), reading("M2", 0, "10.00"))
    batch = [reading("M2", h, f"{10 + h}.00") for h in range(1, 41)]  # a run the fast path accepts
    batch += [reading("M1", 1, "1.50"), reading("M1", 2, "0.50"), reading("M2", 0, "10.00")]
    batch += [reading("M9", 1, "1.00"), reading("M9", 2, "2.00")]
    result = submit(pipeline, loader, *batch)
    one_by_one = {"accepted": 0, "duplicate": 0, "flags": 0}
    for outcome in result.outcomes:
        if outcome.status in ("accepted", "duplicate"):
            one_by_one[outcome.status] += 1
        one_by_one["flags"] += bool(outcome.flags & Flag.ROLLOVER)
    summary = result.summary()
    assert (summary.accepted, summary.duplicate) == (41, 1) == (one_by_one["accepted"], one_by_one["duplicate"])
    assert dict(summary.flagged) == {"rollover": 1} and one_by_one["flags"] == 1
    assert dict(summary.rejected) == {"lower_than_previous": 1, "unknown_meter": 2}
    assert (summary.total, summary.refused) == (45, 3)
    twice = result.summary()
    twice.add(result)
    assert (twice.accepted, twice.rejected["unknown_meter"], twice.total) == (82, 4, 90)
