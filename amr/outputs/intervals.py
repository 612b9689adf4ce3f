"""Interval data for people and other systems: a meter's profile with its missing intervals, and
consumption buckets made from intervals where they cover the bucket.

Each interval says how it is known: ``measured`` (the meter's profile, or registers at both
edges), ``incomplete`` (the meter marked it: power failure, clock change, partial), ``estimated``
(with its method), or ``missing`` (expected and not known: a gap, never filled silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalValue, ProfileFlag, floor_interval
from amr.outputs.consumption import Bucket
from amr.validation.estimation import usual_length
from amr.validation.intervals import SumMismatch, sum_check

if TYPE_CHECKING:
    from amr.core.meters import Meter
    from amr.store import Store

MISSING = "missing"
STATUSES = ("measured", "incomplete", "estimated", MISSING)


@dataclass(frozen=True, slots=True)
class Slot:
    """One expected interval of one channel: its value, or None when it is missing."""

    channel: Channel
    start: datetime
    end: datetime
    value: IntervalValue | None

    @property
    def status(self) -> str:
        """measured, incomplete, estimated or missing."""
        return MISSING if self.value is None else self.value.status.value


def profile(
    values: Sequence[IntervalValue], channel: Channel, start: datetime, end: datetime, until: datetime
) -> list[Slot]:
    """The expected intervals of `channel` in [start, end) — none after `until` (now: the future is
    not missing) — each with its stored value, or missing."""
    own = [v for v in values if v.channel is channel]
    length = usual_length(own)
    by_start = {v.start: v for v in own}
    slots: list[Slot] = []
    at = floor_interval(start, length)
    while at < end:
        value = by_start.get(at)
        if value is not None:
            slots.append(Slot(channel, at, value.end, value))
            at = value.end
        elif at + length <= until:
            slots.append(Slot(channel, at, at + length, None))
            at += length
        else:
            break
    return slots


@dataclass(slots=True)
class Cover:
    """How a consumption bucket's intervals are known: counts by status, and their energy."""

    measured: int = 0
    incomplete: int = 0
    estimated: int = 0
    missing: int = 0
    wh: int = 0
    end: datetime | None = None  # where the last of them ends
    substituted: int = 0  # of the measured: a dispatcher's values (source manual)

    @property
    def all_measured(self) -> bool:
        """Every interval read from the meter (or derived from its registers): none missing, estimated,
        incomplete or substituted."""
        return self.measured > 0 and not (self.missing or self.estimated or self.incomplete or self.substituted)

    @property
    def known(self) -> int:
        """Intervals with a value."""
        return self.measured + self.incomplete + self.estimated

    def as_dict(self) -> dict[str, int]:
        """Counts by status."""
        return {
            "measured": self.measured,
            "incomplete": self.incomplete,
            "estimated": self.estimated,
            "missing": self.missing,
        }


def covers(buckets: Sequence[Bucket], slots: Sequence[Slot]) -> list[Cover | None]:
    """Per bucket, the counts of the profile `slots` (in time order) lying wholly inside it; None for
    a bucket that holds no expected interval (e.g. a 30-minute bucket of an hourly profile)."""
    found: list[Cover | None] = []
    index = 0
    for bucket in buckets:
        while index < len(slots) and slots[index].start < bucket.start:
            index += 1
        cover: Cover | None = None
        i = index
        while i < len(slots) and slots[i].end <= bucket.end:
            slot = slots[i]
            cover = cover or Cover()
            cover.end = slot.end
            if slot.value is None:
                cover.missing += 1
            else:
                setattr(cover, slot.status, getattr(cover, slot.status) + 1)
                cover.wh += slot.value.wh
                if slot.value.source is IntervalSource.MANUAL:
                    cover.substituted += 1
            i += 1
        found.append(cover)
    return found


def apply_intervals(buckets: Sequence[Bucket], bucket_covers: Sequence[Cover | None]) -> list[str]:
    """Take a bucket's consumption from its intervals when none of them is missing (its register-based
    value otherwise); the basis of each bucket: ``intervals`` or ``registers``. A bucket not over yet
    keeps the rest of it as a gap ("to date")."""
    basis: list[str] = []
    for bucket, cover in zip(buckets, bucket_covers, strict=True):
        if cover is not None and cover.known and not cover.missing and cover.end is not None:
            bucket.value = cover.wh
            bucket.gaps = [(cover.end, bucket.end)] if cover.end < bucket.end else []
            basis.append("intervals")
        else:
            basis.append("registers")
    return basis


def consumption_covers(
    store: Store, meters: Sequence[Meter], channel: Channel, tariff: int, buckets: Sequence[Bucket], now: datetime
) -> list[Cover | None] | None:
    """Per bucket, how the meters' intervals of `channel` cover it (summed over the meters of a
    metering point, each within its service dates); None when intervals do not apply: another tariff
    than the total (profiles are not kept per tariff) or no interval of these meters in the period."""
    if tariff != 0 or not buckets:
        return None
    start, end = buckets[0].start, buckets[-1].end
    slots: list[Slot] = []
    for meter in meters:
        lo = max(start, meter.installed) if meter.installed else start
        hi = min(end, meter.removed) if meter.removed else end
        if hi <= lo:
            continue
        values = store.intervals(meter.serial, lo, hi, [channel])
        if values:
            slots.extend(profile(values, channel, lo, hi, now))
    if not slots:
        return None
    slots.sort(key=lambda s: s.start)
    return covers(buckets, slots)


def flag_names(flags: ProfileFlag) -> list[str]:
    """The meter's status bits by name: power_failure, clock_changed, partial, ..."""
    return [f.name.lower() for f in ProfileFlag if f and f.name and f in flags]


def meter_profile(
    store: Store, meter: Meter, channels: Sequence[Channel], start: datetime, end: datetime, now: datetime
) -> tuple[list[Slot], list[SumMismatch]]:
    """The meter's expected intervals of `channels` (those it has intervals of) in [start, end), and
    the sum check of them against its register readings."""
    values = store.intervals(meter.serial, start, end, channels)
    readings = store.readings([meter.id], start, end, tariff=0)
    slots: list[Slot] = []
    mismatches: list[SumMismatch] = []
    for channel in channels:
        own = [v for v in values if v.channel is channel]
        if not own:
            continue
        slots.extend(profile(own, channel, start, end, now))
        mismatches.extend(sum_check(meter, channel, own, readings))
    return slots, mismatches
