"""``/api/v1/meters/{serial}``: a meter's history of accepted readings and its consumption."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from amr.api.deps import Ctx, CurrentUser, refuse_control_characters
from amr.api.errors import invalid, responses
from amr.api.present import (
    consumption_since_previous,
    decode_cursor,
    encode_cursor,
    kwh,
    local,
    parse_month,
    period,
    reading_item,
)
from amr.api.schemas import (
    DAY_OR_MOMENT,
    ConsumptionBucket,
    ConsumptionSeries,
    Gap,
    MonthText,
    ReadingPage,
    SourceFilter,
    TokenText,
    WholeText,
)
from amr.core.domain import Channel, Source
from amr.outputs.consumption import Step, boundaries, consumption
from amr.outputs.intervals import apply_intervals, consumption_covers
from amr.store.readings_api import history

router = APIRouter(prefix="/api/v1/meters", tags=["meters"], dependencies=[Depends(refuse_control_characters)])
Serial = Annotated[str, Path(min_length=1, max_length=64, description="meter serial number")]
From = Annotated[
    Annotated[str, DAY_OR_MOMENT] | None,
    Query(alias="from", max_length=40, description="date (site's zone) or ISO datetime"),
]
To = Annotated[
    Annotated[str, DAY_OR_MOMENT] | None,
    Query(alias="to", max_length=40, description="date (its whole day is included) or ISO datetime"),
]
MAX_BUCKETS = 20_000
ASKUE = [s.value for s in Source if s.value.startswith("askue:")]


@router.get("/{serial}/readings", response_model=ReadingPage, responses=responses(401, 404, 422))
def readings(
    serial: Serial,
    principal: CurrentUser,
    ctx: Ctx,
    start: From = None,
    end: To = None,
    source: Annotated[list[SourceFilter] | None, Query(description="askue means every askue:* source")] = None,
    billing_month: Annotated[MonthText | None, Query(max_length=7, description="YYYY-MM")] = None,
    tariff: Annotated[int | None, Query(ge=0, le=4), WholeText] = None,
    limit: Annotated[int, Query(ge=1, le=1000), WholeText] = 100,
    cursor: Annotated[TokenText | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> ReadingPage:
    """Accepted readings, newest first: value per channel, consumption since the previous reading of
    the same tariff (whatever its source), source and flags; paginated with ``cursor``."""
    meter = principal.meter(serial, ctx.meters)
    tz = ctx.tz
    begin, finish = period(start, end, tz)
    if billing_month is not None:
        month_start, month_end = parse_month(billing_month, "billing_month", tz)
        begin = month_start if begin is None else max(begin, month_start)
        finish = month_end if finish is None else min(finish, month_end)
    sources = None
    if source:
        sources = sorted({s for name in source for s in (ASKUE if name == "askue" else [name])})
    after = decode_cursor(cursor) if cursor else None
    page = history(ctx.store, meter.id, begin, finish, sources, after, limit + 1, tariff)
    more = len(page) > limit
    page = page[:limit]
    used = consumption_since_previous(ctx.store, meter, page)
    items = [reading_item(meter, r, tz, used.get((r.tariff, r.ts))) for r in page]
    next_cursor = encode_cursor(page[-1].ts, page[-1].tariff) if more and page else None
    return ReadingPage(meter=meter.serial, items=items, next_cursor=next_cursor)


@router.get("/{serial}/consumption", response_model=ConsumptionSeries, responses=responses(401, 404, 422))
def meter_consumption(
    serial: Serial,
    principal: CurrentUser,
    ctx: Ctx,
    start: From = None,
    end: To = None,
    step: Literal["30min", "hour", "day", "month"] = "day",
    channel: Channel = Channel.A_PLUS,
    tariff: Annotated[int, Query(ge=0, le=4), WholeText] = 0,
) -> ConsumptionSeries:
    """Consumption per bucket in the site's zone, for plots and bills; a bucket not fully covered by
    readings is marked incomplete with its gaps (nothing is interpolated). Where the meter has interval
    data, a bucket whose intervals are all known is taken from them (``basis`` intervals) and
    ``intervals`` counts them by status (measured, incomplete, estimated, missing). Default: the last
    31 days (366 for months)."""
    meter = principal.meter(serial, ctx.meters)
    tz = ctx.tz
    bucket = Step(step)
    begin, finish = period(start, end, tz)
    finish = finish or ctx.now()
    begin = begin or finish - (timedelta(days=366) if bucket is Step.MONTH else timedelta(days=31))
    if finish <= begin:
        raise invalid("from", "must be earlier than to", "должно быть раньше to", code="invalid_period")
    per_bucket = {Step.HALF_HOUR: 1800, Step.HOUR: 3600, Step.DAY: 86400, Step.MONTH: 28 * 86400}[bucket]
    if (finish - begin).total_seconds() / per_bucket > MAX_BUCKETS:
        raise invalid(
            "step",
            f"more than {MAX_BUCKETS} buckets; shorten the period or take a longer step",
            f"больше {MAX_BUCKETS} интервалов; сократите период или укрупните шаг",
            code="too_many_buckets",
        )
    edges = boundaries(begin, finish, bucket, tz)
    series = [(meter, ctx.store.consumption_series(meter, tariff, bucket, edges[0], edges[-1]))]
    buckets = consumption(series, channel, edges)
    covers = consumption_covers(ctx.store, [meter], channel, tariff, buckets, ctx.now())
    basis = apply_intervals(buckets, covers) if covers is not None else ["registers"] * len(buckets)
    values = [b.value for b in buckets if b.value is not None]
    return ConsumptionSeries(
        meter=meter.serial,
        channel=channel,
        unit=channel.unit,
        tariff=tariff,
        step=bucket.value,
        timezone=tz.key,
        total=kwh(sum(values)) if values else None,
        complete=all(b.complete for b in buckets),
        buckets=[
            ConsumptionBucket(
                start=b.start,
                end=b.end,
                local_start=local(b.start, tz),
                value=kwh(b.value),
                complete=b.complete,
                gaps=[Gap(start=s, end=e) for s, e in b.gaps],
                basis=how,
                intervals=None if covers is None or covers[i] is None else covers[i].as_dict(),  # type: ignore[union-attr]
            )
            for i, (b, how) in enumerate(zip(buckets, basis, strict=True))
        ],
    )
