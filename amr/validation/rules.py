"""The VEE rules as pure functions of a meter and the readings involved."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, tzinfo
from fractions import Fraction

from amr.core.domain import Channel, IncomingReading
from amr.core.energy import hours_between
from amr.core.meters import WRAP_ZONE, Meter
from amr.core.timetext import local_text
from amr.validation.reasons import Reason

MICROS_PER_HOUR = 3_600_000_000


class Step(enum.Enum):
    """How a register moved between two consecutive readings of one channel."""

    OK = "ok"
    WRAP = "wrap"
    LOWER = "lower"
    IMPLAUSIBLE = "implausible"


def _micros(start: datetime, end: datetime) -> int:
    span = end - start
    return (span.days * 86400 + span.seconds) * 1_000_000 + span.microseconds


def step(meter: Meter, prev_ts: datetime, prev_wh: int, ts: datetime, wh: int) -> Step:
    """Judge the move of one register from (prev_ts, prev_wh) to (ts, wh), with ts > prev_ts."""
    scale = meter.scale_at(ts)
    if meter.scale_at(prev_ts) is not scale:
        return _step_across_ratio_change(meter, prev_ts, prev_wh, ts, wh)
    delta = wh - prev_wh
    power = scale.power_w
    if delta >= 0:
        if power is not None and delta * MICROS_PER_HOUR > power * _micros(prev_ts, ts):
            return Step.IMPLAUSIBLE
        return Step.OK
    if (
        prev_wh >= scale.wrap_top
        and wh <= scale.wrap_bottom
        and (power is None or (delta + scale.modulus) * MICROS_PER_HOUR <= power * _micros(prev_ts, ts))
    ):
        return Step.WRAP
    return Step.LOWER


def _step_across_ratio_change(meter: Meter, prev_ts: datetime, prev_wh: int, ts: datetime, wh: int) -> Step:
    """The same judgement on register values, when the transformer ratio changed in between."""
    prev_raw = Fraction(prev_wh) / meter.ratio_at(prev_ts)
    raw = Fraction(wh) / meter.ratio_at(ts)
    delta = raw - prev_raw
    limit = meter.max_energy_wh(hours_between(prev_ts, ts))
    if delta >= 0:
        return Step.IMPLAUSIBLE if limit is not None and delta > limit else Step.OK
    modulus = meter.modulus_wh
    near = modulus * WRAP_ZONE
    if prev_raw >= modulus - near and raw <= near and (limit is None or delta + modulus <= limit):
        return Step.WRAP
    return Step.LOWER


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 60:
        return f"{seconds} s"
    return f"{seconds // 60} min"


def static_reasons(
    reading: IncomingReading, meter: Meter, now: datetime, tolerance: timedelta, tz: tzinfo = UTC
) -> list[tuple[Reason, str]]:
    """Checks that need no other reading: shape, time, service dates, register capacity
    (times in the messages are in the site's zone `tz`)."""
    found: list[tuple[Reason, str]] = []
    if reading.problems:
        found.extend((Reason.MALFORMED, p) for p in reading.problems)
        return found
    if reading.ts is None:
        return [(Reason.MALFORMED, "the reading has no timestamp")]
    if not 0 <= reading.tariff <= meter.tariffs:
        found.append(
            (
                Reason.MALFORMED,
                f"tariff {reading.tariff} is not a zone of meter {meter.serial}: it has "
                f"{meter.tariffs} zone(s); use 0 for the total or 1..{meter.tariffs}",
            )
        )
    present = {c: v for c, v in reading.values.items() if v is not None}
    if not present:
        found.append((Reason.MALFORMED, "no channel has a value; give at least one of A+, A-, R+, R-"))
    for channel, value in present.items():
        if value < 0:
            found.append((Reason.MALFORMED, f"{channel.label} is negative; registers count up from 0"))
    if found:
        return found
    if reading.ts > now + tolerance:
        found.append(
            (
                Reason.FUTURE_TIMESTAMP,
                f"{local_text(reading.ts, tz)} is later than now ({local_text(now, tz)}) "
                f"plus the clock tolerance of {_span(tolerance)}",
            )
        )
    if meter.installed is not None and reading.ts < meter.installed:
        found.append(
            (
                Reason.BEFORE_INSTALLATION,
                f"meter {meter.serial} was installed at {local_text(meter.installed, tz)}",
            )
        )
    if meter.removed is not None and reading.ts > meter.removed:
        found.append(
            (Reason.AFTER_REMOVAL, f"meter {meter.serial} was removed at {local_text(meter.removed, tz)}")
        )
    capacity = meter.scale_at(reading.ts).capacity
    for channel, value in present.items():
        if value > capacity:
            found.append(
                (
                    Reason.OVER_CAPACITY,
                    f"{channel.label} does not fit a register of {meter.digits} digits and "
                    f"{meter.decimals} decimals (at ratio {meter.ratio_at(reading.ts)})",
                )
            )
    return found


def channel_order(values: dict[Channel, int | None]) -> list[Channel]:
    """The channels present in `values`, in A+, A-, R+, R- order."""
    return [c for c in Channel if values.get(c) is not None]
