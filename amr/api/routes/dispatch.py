"""``/api/v1/dispatch``: the dispatcher's view — meter status and completeness, the queue of
refused readings with override (audited), and «poll now»."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from amr.api.deps import Ctx, Language, Staff, refuse_control_characters
from amr.api.errors import ApiError, not_found, responses
from amr.api.present import parse_day, reading_item, rejected_item
from amr.api.schemas import (
    DayText,
    DispatchMeter,
    DispatchMeters,
    OverrideResult,
    PollResult,
    RejectedItem,
    ResolveInput,
    WholeText,
)
from amr.errors import DriverError, NotFound
from amr.store.dashboard_queries import meter_schedules
from amr.store.health import HealthRecord, completeness_of, interval_completeness_of, load_health
from amr.store.intervals import IntervalCompleteness
from amr.store.readings_api import rejected_of

router = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"], dependencies=[Depends(refuse_control_characters)])
RejectedId = Annotated[int, Path(ge=1, le=2**31 - 1), WholeText]


@router.get("/meters", response_model=DispatchMeters, responses=responses(401, 403, 422))
def dispatch_meters(
    principal: Staff,
    ctx: Ctx,
    status: Literal["online", "degraded", "offline", "unknown"] | None = None,
    object_name: Annotated[str | None, Query(alias="object", max_length=200)] = None,
    search: Annotated[str | None, Query(max_length=100, description="part of serial, name or point")] = None,
    period: Literal["day", "month"] = "day",
    day: Annotated[DayText | None, Query(alias="date", max_length=10, description="default today")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000), WholeText] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000), WholeText] = 0,
) -> DispatchMeters:
    """Per meter: status (online, degraded, offline, unknown — from the collector), last poll, last
    error, and completeness: reading times stored ÷ polls the meter's schedule makes in the day or
    month so far."""
    tz = ctx.tz
    now = ctx.now()
    chosen = parse_day(day, "date") if day else now.astimezone(tz).date()
    first = chosen if period == "day" else chosen.replace(day=1)
    following = (
        first + timedelta(days=1) if period == "day" else (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    )
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(following, time(), tz).astimezone(UTC)
    meters = principal.scope.meters(ctx.meters)
    if object_name:
        meters = [m for m in meters if m.object == object_name]
    if search:
        needle = search.lower()
        meters = [m for m in meters if needle in f"{m.serial} {m.name} {m.point}".lower()]
    health = load_health(ctx.store)
    schedules = meter_schedules(ctx.app.config, [m.serial for m in meters])
    counts = completeness_of(ctx.store, meters, schedules, start, min(end, now), ctx.tz)
    interval_counts = interval_completeness_of(ctx.store, meters, start, min(end, now))
    items = []
    for meter in meters:
        state = health.get(meter.id) or HealthRecord(meter.id)
        if status is not None and state.status != status:
            continue
        got = counts[meter.id]
        items.append(
            DispatchMeter(
                serial=meter.serial,
                name=meter.name,
                object=meter.object,
                point=meter.point,
                model=meter.model,
                status=state.status,
                last_poll=state.last_poll_at,
                last_error=state.last_error,
                last_reading=got.last,
                readings_expected=got.expected,
                readings_received=got.received,
                completeness=round(got.share, 4),
                **interval_fields(interval_counts.get(meter.id)),
            )
        )
    return DispatchMeters(period=period, start=start, end=end, total=len(items), items=items[offset : offset + limit])


def interval_fields(found: IntervalCompleteness | None) -> dict[str, Any]:
    """The interval completeness fields of a meter (all null without interval data)."""
    if found is None:
        return {}
    return {
        "intervals_expected": found.expected,
        "intervals_received": found.received,
        "interval_completeness": round(found.share, 4),
    }


@router.get("/rejected", response_model=list[RejectedItem], responses=responses(401, 403, 422))
def rejected(
    principal: Staff,
    ctx: Ctx,
    lang: Language,
    status: Literal["open", "accepted", "all"] = "open",
    meter: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000), WholeText] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000), WholeText] = 0,
) -> list[RejectedItem]:
    """Refused readings, newest first, with reason codes and messages."""
    serials = principal.scope.serial_filter(meter)
    records = rejected_of(ctx.store, None if status == "all" else status, serials, limit, offset)
    return [rejected_item(r, lang) for r in records]


@router.post(
    "/rejected/{rejected_id}/accept", response_model=OverrideResult, responses=responses(401, 403, 404, 409, 422)
)
def accept_rejected(rejected_id: RejectedId, body: ResolveInput, principal: Staff, ctx: Ctx) -> OverrideResult:
    """Accept a refused reading against the rules (flagged overridden, replacing a conflicting one),
    with a reason; audited."""
    try:
        record = ctx.store.get_rejected(rejected_id)
    except NotFound:
        record = None
    if record is None or not principal.scope.sees(record.meter_serial):
        raise not_found(f"no refused reading {rejected_id}", f"отклонённое показание {rejected_id} не найдено")
    if record.status != "open":
        raise ApiError(
            409,
            "already_resolved",
            f"refused reading {rejected_id} is already {record.status}",
            f"отклонённое показание {rejected_id} уже обработано ({record.status})",
        )
    meter = ctx.meters.get(record.meter_serial)
    if meter is None or record.ts is None or record.tariff is None or record.meter_id is None:
        raise ApiError(
            422,
            "cannot_accept",
            "this refused reading has no known meter, time or tariff; submit a corrected reading instead",
            "у этого показания нет известного счётчика, времени или тарифа; передайте исправленное",
        )
    reading = ctx.store.override(rejected_id, meter, principal.login, body.reason, ctx.now())
    return OverrideResult(rejected_id=rejected_id, reading=reading_item(meter, reading, ctx.tz))


@router.post("/meters/{serial}/poll", response_model=PollResult, responses=responses(401, 403, 404, 422, 502, 503))
async def poll_now(serial: Annotated[str, Path(min_length=1, max_length=64)], principal: Staff, ctx: Ctx) -> PollResult:
    """Poll a meter now through the collector (503 collector_not_running when it is not running here)."""
    meter = principal.meter(serial, ctx.meters)
    if ctx.poller is None:
        raise ApiError(
            503,
            "collector_not_running",
            "the collector is not running in this process",
            "сборщик данных не запущен в этом процессе",
            retry_after=30,
        )
    try:
        result = await ctx.poller.poll_now(meter.serial)
    except DriverError as exc:
        code = {
            "ConnectError": "connect_error",
            "ReadTimeout": "read_timeout",
            "ProtocolError": "protocol_error",
            "DeviceError": "device_error",
        }.get(type(exc).__name__, "poll_failed")
        raise ApiError(
            502, code, f"the meter could not be polled: {exc}", f"не удалось опросить счётчик: {exc}"
        ) from None
    except NotFound:
        raise ApiError(
            503,
            "collector_not_running",
            "the collector does not poll this meter",
            "сборщик данных не опрашивает этот счётчик",
        ) from None
    return PollResult(serial=meter.serial, result=dict(result))
