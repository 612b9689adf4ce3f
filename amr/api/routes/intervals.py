"""``/api/v1/meters/{serial}/intervals``: a meter's interval data (load profile), for every role that
sees the meter (an АСКУЭ customer its own meters' profile), and a dispatcher's substitution."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from amr.api.deps import Ctx, CurrentUser, Staff, refuse_control_characters
from amr.api.errors import invalid, responses
from amr.api.present import kwh, local, parse_moment, period
from amr.api.routes.meters import From, Serial, To
from amr.api.schemas_intervals import (
    IntervalCounts,
    IntervalItem,
    IntervalProfile,
    SubstituteInput,
    SumMismatchItem,
)
from amr.core.domain import CHANNELS, Channel, wh_from_kwh
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.outputs.intervals import STATUSES, Slot, flag_names, meter_profile

router = APIRouter(prefix="/api/v1", tags=["intervals"], dependencies=[Depends(refuse_control_characters)])
MAX_SPAN = timedelta(days=93)


def interval_item(slot: Slot, tz: ZoneInfo) -> IntervalItem:
    """An expected interval as the API gives it."""
    v = slot.value
    return IntervalItem(
        channel=slot.channel,
        start=slot.start,
        end=slot.end,
        local_start=local(slot.start, tz),
        minutes=int((slot.end - slot.start).total_seconds() // 60),
        value=None if v is None else kwh(v.wh),
        status=slot.status,
        source=None if v is None else v.source.value,
        method=None if v is None else v.method,
        flags=flag_names(v.flags) if v is not None else [],
    )


@router.get("/meters/{serial}/intervals", response_model=IntervalProfile, responses=responses(401, 404, 422))
def intervals(
    serial: Serial,
    principal: CurrentUser,
    ctx: Ctx,
    start: From = None,
    end: To = None,
    channel: Annotated[Channel | None, Query(description="one channel; default every channel the meter has")] = None,
) -> IntervalProfile:
    """The meter's expected intervals in [from, to) — default yesterday and today in the site's zone,
    at most 93 days — each with its energy (kWh / kvarh at the primary side) and status: measured,
    incomplete (the meter's status bits say why), estimated (with the method) or missing; and the
    sum check against the register readings (reason code sum_mismatch)."""
    meter = principal.meter(serial, ctx.meters)
    tz = ctx.tz
    now = ctx.now()
    begin, finish = period(start, end, tz)
    today = parse_moment(now.astimezone(tz).date().isoformat(), "from", tz)
    finish = finish or today + timedelta(days=1)
    begin = begin or min(today - timedelta(days=1), finish - timedelta(days=1))
    if finish <= begin:
        raise invalid("from", "must be earlier than to", "должно быть раньше to", code="invalid_period")
    if finish - begin > MAX_SPAN:
        raise invalid(
            "to", "at most 93 days of intervals at once", "не больше 93 дней интервалов за раз", code="period_too_long"
        )
    channels = [channel] if channel is not None else list(CHANNELS)
    slots, mismatches = meter_profile(ctx.store, meter, channels, begin, finish, now)
    counts = {s: sum(1 for slot in slots if slot.status == s) for s in STATUSES}
    return IntervalProfile(
        meter=meter.serial,
        timezone=tz.key,
        start=begin,
        end=finish,
        counts=IntervalCounts(**counts),
        intervals=[interval_item(s, tz) for s in slots],
        sum_check=[
            SumMismatchItem(
                channel=m.channel,
                start=m.start,
                end=m.end,
                registers=kwh(m.register_wh) or "0",
                intervals=kwh(m.intervals_wh) or "0",
                tolerance=kwh(m.tolerance_wh) or "0",
            )
            for m in mismatches
        ],
    )


@router.put("/dispatch/meters/{serial}/intervals", response_model=IntervalItem, responses=responses(401, 403, 404, 422))
def substitute(serial: Serial, body: SubstituteInput, principal: Staff, ctx: Ctx) -> IntervalItem:
    """Put a dispatcher's value on one interval, in force over any stored one (measured or estimated,
    which is kept as a revision); audited with the reason. A later profile read does not replace it."""
    meter = principal.meter(serial, ctx.meters)
    start = parse_moment(body.start, "start", ctx.tz)
    length = timedelta(minutes=body.minutes)
    value = IntervalValue(
        meter.serial,
        body.channel,
        start,
        length,
        wh_from_kwh(body.value),
        IntervalStatus.MEASURED,
        IntervalSource.MANUAL,
        ctx.now(),
    )
    ctx.store.substitute_interval(value, principal.login, body.reason, ctx.now())
    [stored] = ctx.store.intervals(meter.serial, start, start + length, [body.channel])
    return interval_item(Slot(stored.channel, stored.start, stored.end, stored), ctx.tz)
