"""Meter events and clocks: ``GET /api/v1/meters/{serial}/events`` (every role, within its scope),
``GET /api/v1/dispatch/clock`` (drift per meter) and ``POST /api/v1/dispatch/meters/{serial}/clock``
(check and correct now; dispatcher and admin, audited, through the collector running in this process)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from amr.api.deps import Ctx, CurrentUser, Language, Staff, refuse_control_characters
from amr.api.errors import ApiError, responses
from amr.api.present import local, period
from amr.api.routes.meters import From, Serial, To
from amr.api.schemas import ResolveInput, WholeText
from amr.api.schemas_meter_ops import ClockItem, ClockList, ClockResult, EventItem, EventPage
from amr.store.audit_trail import audit
from amr.store.events import events_of, load_clock, request_clock
from amr.store.store import translate_errors

router = APIRouter(tags=["operations"], dependencies=[Depends(refuse_control_characters)])
Code = Annotated[str, Query(pattern="^[a-z_.]{1,40}$", max_length=40)]


@router.get("/api/v1/meters/{serial}/events", response_model=EventPage, responses=responses(401, 404, 422))
def meter_events(
    serial: Serial,
    principal: CurrentUser,
    ctx: Ctx,
    lang: Language,
    start: From = None,
    end: To = None,
    code: Annotated[list[Code] | None, Query(description="only these codes (e.g. tamper.cover_opened)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000), WholeText] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000), WholeText] = 0,
) -> EventPage:
    """The meter's events, newest first: its journals (power, phases, cover, clock changes) and what
    the head-end did (clock corrections, refusals)."""
    meter = principal.meter(serial, ctx.meters)
    begin, finish = period(start, end, ctx.tz)
    found = events_of(ctx.store, {meter.id: meter.serial}, begin, finish, codes=code, limit=limit + 1, offset=offset)
    more = len(found) > limit
    items = []
    for stored in found[:limit]:
        body = stored.as_dict(lang)
        body.pop("meter")
        body.pop("recorded_at")
        body.pop("alarm")
        items.append(EventItem(**body, local_time=local(stored.event.utc(), ctx.tz)))
    return EventPage(meter=meter.serial, items=items, next_offset=offset + limit if more else None)


@router.get("/api/v1/dispatch/clock", response_model=ClockList, responses=responses(401, 403, 422))
def clocks(principal: Staff, ctx: Ctx) -> ClockList:
    """The last clock check of every meter in scope: drift, state (``uncorrectable``: flagged, the
    protocol's limits or the policy do not let the collector correct it) and the last correction."""
    meters = principal.scope.meters(ctx.meters)
    checks = load_clock(ctx.store, [m.id for m in meters])
    items = []
    for meter in meters:
        check = checks.get(meter.id)
        policy = ctx.app.config.clock.policy(meter.serial, _bus(ctx, meter.serial))
        items.append(
            ClockItem(
                serial=meter.serial, name=meter.name, object=meter.object,
                state="unknown" if check is None else check.state,
                drift_s=None if check is None or check.drift_ms is None else check.drift_ms / 1000,
                meter_time=None if check is None else check.meter_time,
                checked_at=None if check is None else check.checked_at,
                message="" if check is None else check.message,
                corrected_at=None if check is None else check.corrected_at,
                correction_s=None if check is None or check.correction_ms is None else check.correction_ms / 1000,
                threshold_s=policy.threshold.total_seconds(),
            )
        )
    return ClockList(total=len(items), items=items)


def _bus(ctx: Ctx, serial: str) -> str | None:
    return next((m.bus for m in ctx.app.config.meters if m.serial == serial), None)


@router.post(
    "/api/v1/dispatch/meters/{serial}/clock",
    response_model=ClockResult,
    status_code=200,
    responses={**responses(401, 403, 404, 409, 422, 502), 202: {"model": ClockResult, "description": "requested"}},
)
async def correct_clock(
    serial: Serial, body: ResolveInput, principal: Staff, ctx: Ctx, response: Response
) -> ClockResult:
    """Read the meter's clock and correct it within the protocol's limits (whatever the policy's
    ``correct`` says), with a reason; audited. With the collector in this process (``amr run``) it is
    done at once: 200 with the outcome, 409 ``clock_refused`` when the meter refuses (e.g. a Mercury
    230 corrected today already), 409 ``clock_uncorrectable`` beyond what may be done, 502
    ``clock_unread`` when the meter does not answer. Otherwise the request is stored for the collector
    polling the meter (202, state ``requested``; its result is audited and shown by ``/dispatch/clock``
    and the meter's events); 409 ``no_bus`` for a meter no collector polls."""
    from amr.operations.runtime import MeterOperations

    meter = principal.meter(serial, ctx.meters)
    operations = getattr(getattr(ctx.poller, "collector", None), "operations", None)
    now = datetime.now(UTC)
    if not isinstance(operations, MeterOperations) or meter.serial not in operations.collector.polled:
        if not any(m.serial == meter.serial and m.bus for m in ctx.app.config.meters):
            raise ApiError(409, "no_bus", "this meter is not on a polled bus: it has no clock to correct",
                           "счётчик не подключён к опрашиваемой линии: нечего корректировать")
        request_clock(ctx.store, meter.id, principal.login, body.reason, now)
        with translate_errors(), ctx.store.engine.begin() as conn:
            audit(conn, now, principal.login, "clock_correction", meter.serial, body.reason, {"state": "requested"})
        response.status_code = 202
        return ClockResult(meter=meter.serial, state="requested",
                           message="the collector polling this meter will correct it within seconds")
    outcome = await operations.sync_clock(meter.serial)
    result = outcome.as_dict()
    with translate_errors(), ctx.store.engine.begin() as conn:
        audit(conn, datetime.now(UTC), principal.login, "clock_correction", meter.serial, body.reason, result)
    if outcome.state == "refused":
        raise ApiError(409, "clock_refused", outcome.message, f"счётчик отказал в коррекции времени: {outcome.message}")
    if outcome.state == "uncorrectable":
        raise ApiError(
            409, "clock_uncorrectable", outcome.message, f"уход часов нельзя исправить: {outcome.message}"
        )
    if outcome.state == "unread":
        raise ApiError(502, "clock_unread", outcome.message, f"часы счётчика не прочитаны: {outcome.message}")
    return ClockResult(
        meter=meter.serial, state=outcome.state,
        drift_s=result["drift_s"], meter_time=outcome.meter_time, message=outcome.message, events=result["events"],
    )
