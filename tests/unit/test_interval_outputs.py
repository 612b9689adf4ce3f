"""A meter's profile with its missing intervals, and consumption buckets taken from intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.outputs.consumption import Bucket, Step, boundaries
from amr.outputs.intervals import apply_intervals, covers, profile

HALF = timedelta(minutes=30)
BERLIN = ZoneInfo("Europe/Berlin")


def iv(at: datetime, wh: int, status: IntervalStatus = IntervalStatus.MEASURED) -> IntervalValue:
    source = IntervalSource.ESTIMATED if status is IntervalStatus.ESTIMATED else IntervalSource.PROFILE
    return IntervalValue("S", Channel.A_PLUS, at, HALF, wh, status, source, at)


def test_a_clock_change_day_has_its_real_number_of_half_hours_and_missing_ones_are_named() -> None:
    start = datetime(2026, 10, 25, tzinfo=BERLIN).astimezone(UTC)  # autumn: 25 hours
    end = datetime(2026, 10, 26, tzinfo=BERLIN).astimezone(UTC)
    values = [iv(start + i * HALF, 10) for i in range(50) if i not in (3, 4)]
    slots = profile(values, Channel.A_PLUS, start, end, end + timedelta(days=1))
    assert len(slots) == 50
    assert [s.start for s in slots if s.status == "missing"] == [start + 3 * HALF, start + 4 * HALF]
    # nothing after `until` (now) is missing: the future is not a gap
    so_far = profile(values[:18], Channel.A_PLUS, start, end, start + 22 * HALF)  # slots 0..19 stored but 3, 4
    assert len(so_far) == 22 and [s.status for s in so_far[-2:]] == ["missing", "missing"]


def test_a_bucket_comes_from_intervals_only_when_none_is_missing() -> None:
    tz = ZoneInfo("Europe/Moscow")
    day = datetime(2026, 3, 9, tzinfo=tz).astimezone(UTC)
    edges = boundaries(day, day + timedelta(days=2), Step.DAY, tz)
    buckets = [Bucket(s, e, value=999) for s, e in zip(edges, edges[1:], strict=False)]
    values = [iv(day + i * HALF, 100, IntervalStatus.ESTIMATED if i == 7 else IntervalStatus.MEASURED)
              for i in range(96) if i != 60]
    found = covers(buckets, profile(values, Channel.A_PLUS, edges[0], edges[-1], edges[-1]))
    assert [c.as_dict() if c else None for c in found] == [
        {"measured": 47, "incomplete": 0, "estimated": 1, "missing": 0},
        {"measured": 47, "incomplete": 0, "estimated": 0, "missing": 1},
    ]
    assert apply_intervals(buckets, found) == ["intervals", "registers"]
    assert [b.value for b in buckets] == [4800, 999]
    assert found[0] is not None and not found[0].all_measured
