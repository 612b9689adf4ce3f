"""Consumption buckets in the site's zone: rollover, replacement, ratio change, gaps, month edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from amr.core.domain import Channel
from amr.errors import InputError
from amr.outputs.consumption import Bucket, Step, boundaries, consumption, gap_text
from amr.validation import Pipeline
from tests.support.builders import NOW, meters, reading
from tests.support.memory import MemoryLoader

MSK = ZoneInfo("Europe/Moscow")
VOLGOGRAD = ZoneInfo("Europe/Volgograd")


def local(*args: int, tz: ZoneInfo = MSK) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(timezone.utc)  # type: ignore[misc]


def accepted(specs: list[dict[str, object]], *incoming):  # type: ignore[no-untyped-def]
    built = meters(*specs)
    loader = MemoryLoader()
    result = Pipeline({m.serial: m for m in built}, loader, timedelta(minutes=5), now=lambda: NOW).run(list(incoming))
    assert all(o.status == "accepted" for o in result.outcomes), [o.messages for o in result.outcomes]
    loader.apply(result)
    return [(m, loader.series(m.id)) for m in built]


def test_month_boundaries_follow_the_site_zone() -> None:
    edges = boundaries(local(2026, 1, 15), local(2026, 3, 2), Step.MONTH, MSK)
    assert edges[:3] == [local(2026, 1, 1), local(2026, 2, 1), local(2026, 3, 1)]
    assert edges[0] == datetime(2025, 12, 31, 21, tzinfo=timezone.utc)  # Moscow is UTC+3 all year


def test_day_boundaries_in_a_zone_without_dst_are_24_hours_apart() -> None:
    edges = boundaries(local(2026, 3, 28, tz=VOLGOGRAD), local(2026, 4, 1, tz=VOLGOGRAD), Step.DAY, VOLGOGRAD)
    assert {b - a for a, b in zip(edges, edges[1:], strict=False)} == {timedelta(days=1)}


def test_half_hours_on_a_dst_change_day_are_46() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    edges = boundaries(local(2026, 3, 29, tz=berlin), local(2026, 3, 30, tz=berlin), Step.HALF_HOUR, berlin)
    assert len(edges) - 1 == 46


def test_empty_period_is_refused() -> None:
    with pytest.raises(InputError, match="later than"):
        boundaries(local(2026, 1, 2), local(2026, 1, 1), Step.DAY, MSK)


def test_half_hour_profile_and_billing_month_totals() -> None:
    start = local(2026, 1, 31, 22)
    series = accepted(
        [{"serial": "M"}], *[reading("M", start + timedelta(minutes=30 * i), f"{100 + i}.5") for i in range(9)]
    )
    half_hours = consumption(series, Channel.A_PLUS, boundaries(start, start + timedelta(hours=4), Step.HALF_HOUR, MSK))
    assert [b.value for b in half_hours] == [1000] * 8
    months = consumption(series, Channel.A_PLUS, boundaries(local(2026, 1, 1), local(2026, 3, 1), Step.MONTH, MSK))
    january, february = months
    assert january.value == 4000 and not january.complete  # 22:00..00:00 of the 31st only
    assert february.value == 4000 and not february.complete
    assert january.gaps == [(local(2026, 1, 1), start)]


def test_rollover_counts_the_register_modulus() -> None:
    day = local(2026, 1, 10)
    series = accepted(
        [{"serial": "M", "digits": 6, "decimals": 2}],
        reading("M", day, "999998.00"),
        reading("M", day + timedelta(hours=12), "999999.50"),
        reading("M", day + timedelta(days=1), "3.25"),
    )
    [bucket] = consumption(series, Channel.A_PLUS, boundaries(day, day + timedelta(days=1), Step.DAY, MSK))
    assert bucket.value == 5250 and bucket.complete


def test_replacement_on_a_metering_point_sums_both_series() -> None:
    switch = local(2026, 1, 15, 12)
    series = accepted(
        [
            {"serial": "OLD", "point": "P", "removed": "2026-01-15T12:00:00+03:00"},
            {"serial": "NEW", "point": "P", "installed": "2026-01-15T12:00:00+03:00"},
        ],
        reading("OLD", local(2026, 1, 15), "15000.00"),
        reading("OLD", switch, "15006.00"),
        reading("NEW", switch, "0.00"),
        reading("NEW", local(2026, 1, 16), "4.00"),
    )
    [day] = consumption(series, Channel.A_PLUS, boundaries(local(2026, 1, 15), local(2026, 1, 16), Step.DAY, MSK))
    assert day.value == 10_000 and day.complete


def test_ratio_change_uses_the_ratio_at_the_start_of_each_interval() -> None:
    spec = {"serial": "M", "ct_ratio": [{"ratio": 10}, {"since": "2026-01-10T12:00:00+03:00", "ratio": 20}]}
    series = accepted(
        [spec],
        reading("M", local(2026, 1, 10), "1000.00"),  # register 100.00
        reading("M", local(2026, 1, 10, 12), "2100.00"),  # register 105.00, read at the change: ×20 from here
        reading("M", local(2026, 1, 11), "2200.00"),  # register 110.00 at ×20
    )
    [day] = consumption(series, Channel.A_PLUS, boundaries(local(2026, 1, 10), local(2026, 1, 11), Step.DAY, MSK))
    assert day.value == 50_000 + 100_000


def test_gaps_are_reported_not_invented() -> None:
    day = local(2026, 1, 10)
    series = accepted(
        [{"serial": "M"}],
        reading("M", day, "10.00"),
        reading("M", day + timedelta(hours=6), "16.00"),
        reading("M", day + timedelta(hours=30), "40.00"),  # no reading at the day's end
    )
    first, second = consumption(series, Channel.A_PLUS, boundaries(day, day + timedelta(days=2), Step.DAY, MSK))
    assert first.value == 6000 and first.gaps == [(day + timedelta(hours=6), day + timedelta(days=1))]
    assert second.value is None and second.gaps == [(day + timedelta(days=1), day + timedelta(days=2))]


def test_gap_text_in_the_site_zone() -> None:
    tz = ZoneInfo("Europe/Moscow")

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 1, day, hour, minute, tzinfo=tz).astimezone(UTC)

    day = Bucket(at(5, 0), at(6, 0))
    assert gap_text(day, (at(5, 0), at(6, 0)), tz) == "no readings"
    assert gap_text(day, (at(5, 18), at(6, 0)), tz) == "18:00…24:00"
    assert gap_text(day, (at(5, 10, 30), at(5, 12, 30)), tz) == "10:30…12:30"
    month = Bucket(at(1, 0), datetime(2026, 2, 1, tzinfo=tz).astimezone(UTC))
    assert gap_text(month, (at(3, 6), at(10, 0)), tz) == "2026-01-03 06:00…2026-01-09 24:00"
    assert gap_text(month, (at(3, 6), at(10, 7, 30)), tz) == "2026-01-03 06:00…2026-01-10 07:30"
