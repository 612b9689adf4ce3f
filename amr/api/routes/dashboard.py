"""``/api/v1/dashboard``: what the dispatcher's dashboard shows, one request a screen.

* ``info`` — the site, its time zone, the caller and what this process can do;
* ``summary`` — meters online / degraded / offline / unknown, readings and refusals today;
* ``meters`` — every visible meter with its protocol, status and latest four channels;
* ``meters/{serial}`` — one meter: configuration, health, the latest reading of every tariff
  zone, recent polls (when the collector runs in this process) and recent problems;
* ``rejected`` — the queue of refused readings with the previous accepted reading beside each;
* ``audit`` — the newest audit records (overrides, deletions, moderation).

Account holders (askue) see their own meters without collector health; the summary, the
queue and the audit trail are for dispatchers and admins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from amr import __version__
from amr.api.context import ApiContext
from amr.api.deps import Ctx, CurrentUser, Language, Staff, refuse_control_characters
from amr.api.errors import responses
from amr.api.present import channel_values, local, reason_item, rejected_item
from amr.api.schemas import WholeText
from amr.api.schemas_dashboard import (
    AuditEntry,
    DashInfo,
    DashMeter,
    DashMeterDetail,
    DashProtocol,
    DashRejected,
    DashRejectedPage,
    DashSummary,
    HealthDetail,
    MissingItem,
    PollEntry,
    PreviousValue,
    ProblemEntry,
    StatusCounts,
    TariffReading,
)
from amr.config import MeterConfig
from amr.core.domain import Flag, StoredReading
from amr.core.meters import Meter
from amr.dashboard.problems import missing_reads
from amr.drivers.registry import PROTOCOLS
from amr.store.dashboard_queries import meter_schedules, refused_count
from amr.store.health import Completeness, HealthRecord, Status, completeness_of, load_health
from amr.store.readings_api import history, latest_readings, rejected_of

router = APIRouter(
    prefix="/api/v1/dashboard", tags=["dashboard"], dependencies=[Depends(refuse_control_characters)]
)
Serial = Annotated[str, Path(min_length=1, max_length=64, description="meter serial number")]


# --- helpers ---------------------------------------------------------------------------------


def _today(ctx: ApiContext) -> tuple[datetime, datetime, datetime]:
    """(now, start of today, start of tomorrow) in UTC, days in the site's zone."""
    now = ctx.now()
    day = now.astimezone(ctx.tz).date()
    start = datetime.combine(day, time(), ctx.tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), ctx.tz).astimezone(UTC)
    return now, start, end


def _field_settings(ctx: ApiContext) -> dict[str, tuple[str, str, str | None]]:
    """serial → (bus kind, bus name, address) for meters the configuration puts on a bus."""
    config = ctx.app.config
    kinds: dict[str, str] = {bus.name: bus.kind for bus in config.buses}
    found: dict[str, tuple[str, str, str | None]] = {}
    for meter in config.meters:
        if meter.bus is not None and meter.bus in kinds:
            address = None if meter.address is None else str(meter.address)
            found[meter.serial] = (kinds[meter.bus], meter.bus, address)
    return found


def _status(record: HealthRecord | None) -> Status:
    return record.status if record is not None else "unknown"


def _row(
    meter: Meter,
    field: tuple[str, str, str | None] | None,
    health: HealthRecord | None,
    reading: StoredReading | None,
    today: int,
    staff: bool,
    ctx: ApiContext,
) -> DashMeter:
    kind = field[0] if field else None
    return DashMeter(
        serial=meter.serial,
        name=meter.name,
        object=meter.object,
        point=meter.point,
        model=meter.model,
        protocol=kind,
        protocol_name=PROTOCOLS[kind].label() if kind in PROTOCOLS else None,
        bus=field[1] if field else None,
        tariffs=meter.tariffs,
        status=_status(health) if staff else None,
        last_poll=health.last_poll_at if staff and health else None,
        last_error=health.last_error if staff and health and health.status != "online" else None,
        last_reading=reading.ts if reading else None,
        local_time=local(reading.ts, ctx.tz) if reading else None,
        source=reading.source if reading else None,
        values=channel_values(reading.values if reading else {}),
        readings_today=today,
    )


def _ratio(meter: Meter, now: datetime, which: str) -> str:
    version = meter.ratios[0]
    for candidate in meter.ratios:
        if candidate.since is None or candidate.since <= now:
            version = candidate
    value = getattr(version, which)
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def _today_completeness(
    ctx: ApiContext, meters: Sequence[Meter], start: datetime, now: datetime
) -> dict[int, Completeness]:
    """Each meter's readings today (until now, inclusive) against the polls its schedule makes."""
    schedules = meter_schedules(ctx.app.config, [m.serial for m in meters])
    return completeness_of(ctx.store, meters, schedules, start, now + timedelta(microseconds=1), ctx.tz)


def _poll(entry: dict[str, Any], config: MeterConfig | None, ctx: ApiContext) -> PollEntry:
    """A kept poll with the reads it could not make named by channel where the register map knows them."""
    errors = entry.get("errors") or {}
    bus = next((b for b in ctx.app.config.buses if config is not None and b.name == config.bus), None)
    missing = [
        MissingItem(where=m.where, channels=list(m.channels), answer=m.answer)
        for m in missing_reads(config, bus, errors)
    ]
    return PollEntry(**entry, missing=missing)


def poll_log(request: Request) -> Any:
    """The process's `amr.dashboard.polls.PollLog`, when the collector runs here and keeps one."""
    return getattr(request.app.state, "poll_log", None)


# --- routes ----------------------------------------------------------------------------------


@router.get("/info", response_model=DashInfo, responses=responses(401))
def info(principal: CurrentUser, ctx: Ctx, request: Request) -> DashInfo:
    """The site, its time zone and today, the caller, and what this process offers."""
    export = ctx.app.config.export
    now = ctx.now()
    return DashInfo(
        site=ctx.app.config.site.name,
        timezone=ctx.tz.key,
        now=now,
        today=now.astimezone(ctx.tz).date().isoformat(),
        login=principal.login,
        name=principal.user.name,
        role=principal.role,
        staff=principal.is_staff,
        collector="running" if ctx.poller is not None else "absent",
        polls=poll_log(request) is not None,
        export_80020=bool(export.sender_inn and export.sender_name and export.area_inn and export.area_name),
        version=__version__,
        protocols=protocol_list(),
    )


def protocol_list() -> list[DashProtocol]:
    """Every registered protocol, in the registry's order."""
    return [
        DashProtocol(
            kind=spec.kind, labels=dict(spec.labels), source=spec.source.value, push=spec.push,
            serial_line=spec.serial_line, url_schemes=list(spec.url_schemes), capabilities=sorted(spec.capabilities),
        )
        for spec in PROTOCOLS.values()
    ]


@router.get("/summary", response_model=DashSummary, responses=responses(401, 403))
def summary(principal: Staff, ctx: Ctx) -> DashSummary:
    """Counters of the overview: meters by status, today's readings and refusals, the open queue."""
    now, start, _ = _today(ctx)
    meters = principal.scope.meters(ctx.meters)
    ids = [m.id for m in meters]
    health = load_health(ctx.store, ids)
    counts = StatusCounts()
    for meter in meters:
        state = _status(health.get(meter.id))
        setattr(counts, state, getattr(counts, state) + 1)
    serials = principal.scope.serial_filter()
    today = _today_completeness(ctx, meters, start, now)
    return DashSummary(
        meters=len(meters),
        status=counts,
        readings_today=sum(c.received for c in today.values()),
        expected_today=sum(c.expected for c in today.values()),
        refused_today=refused_count(ctx.store, serials, received_since=start),
        refused_open=refused_count(ctx.store, serials, status="open"),
        day_start=start,
        now=now,
    )


@router.get("/meters", response_model=list[DashMeter], responses=responses(401))
def meters_table(principal: CurrentUser, ctx: Ctx) -> list[DashMeter]:
    """Every visible meter by object and name: protocol, status (staff only), the latest reading
    of tariff 0 with its four channels, and the readings taken today."""
    now, start, _ = _today(ctx)
    meters = principal.scope.meters(ctx.meters)
    ids = [m.id for m in meters]
    latest = latest_readings(ctx.store, ids, (0,))
    health = load_health(ctx.store, ids) if principal.is_staff else {}
    today = _today_completeness(ctx, meters, start, now)
    fields = _field_settings(ctx)
    return [
        _row(
            m,
            fields.get(m.serial),
            health.get(m.id),
            latest.get((m.id, 0)),
            today[m.id].received,
            principal.is_staff,
            ctx,
        )
        for m in meters
    ]


@router.get("/meters/{serial}", response_model=DashMeterDetail, responses=responses(401, 404))
def meter_detail(serial: Serial, principal: CurrentUser, ctx: Ctx, request: Request, lang: Language) -> DashMeterDetail:
    """One meter: what it is, how it answers, the latest reading of every tariff zone, recent
    polls (when the collector runs in this process) and recent problems."""
    meter = principal.meter(serial, ctx.meters)
    now, start, _ = _today(ctx)
    tariffs = tuple(range(meter.tariffs + 1)) if meter.tariffs > 1 else (0,)
    latest = latest_readings(ctx.store, [meter.id], tariffs)
    record = load_health(ctx.store, [meter.id]).get(meter.id) if principal.is_staff else None
    today = _today_completeness(ctx, [meter], start, now)
    field = _field_settings(ctx).get(meter.serial)
    row = _row(
        meter, field, record, latest.get((meter.id, 0)), today[meter.id].received, principal.is_staff, ctx
    )
    config = next((m for m in ctx.app.config.meters if m.serial == meter.serial), None)
    readings = [
        TariffReading(
            tariff=r.tariff,
            timestamp=r.ts,
            local_time=local(r.ts, ctx.tz),
            values=channel_values(r.values),
            source=r.source,
            flags=Flag.names(r.flags),
        )
        for t in tariffs
        if (r := latest.get((meter.id, t))) is not None
    ]
    polls: list[PollEntry] | None = None
    problems: list[ProblemEntry] = []
    if principal.is_staff:
        log = poll_log(request)
        if log is not None:
            polls = [_poll(entry, config, ctx) for entry in log.recent(meter.serial)]
            for p in polls:
                if not p.ok:
                    problems.append(
                        ProblemEntry(at=p.polled_at, kind="poll", code=p.error_kind or "error", message=p.error or "")
                    )
                elif p.missing:
                    problems.append(
                        ProblemEntry(
                            at=p.polled_at,
                            kind="partial",
                            code="partial",
                            message="; ".join(f"{m.where}: {m.answer}" for m in p.missing),
                            missing=p.missing,
                        )
                    )
        if (
            not problems
            and record is not None
            and (log is None or record.status in ("degraded", "offline"))
            and record.last_error
            and record.last_error_at
        ):
            # no poll of it kept here: a degraded meter whose last poll succeeded answered in part
            partial = record.status == "degraded" and record.consecutive_failures == 0
            problems.append(
                ProblemEntry(
                    at=record.last_error_at,
                    kind="partial" if partial else "poll",
                    code="partial" if partial else "error",
                    message=record.last_error,
                )
            )
        for refused in rejected_of(ctx.store, None, frozenset({meter.serial}), 20, 0):
            reasons = [reason_item(c, lang) for c in refused.reasons]
            problems.append(
                ProblemEntry(
                    at=refused.received_at,
                    kind="refused",
                    code=",".join(r.code for r in reasons) or "refused",
                    message="; ".join(r.message for r in reasons)
                    + (f" — {refused.message}" if refused.message else ""),
                )
            )
        problems.sort(key=lambda p: p.at, reverse=True)
    health = None
    if record is not None:
        health = HealthDetail(
            status=record.status,
            last_poll=record.last_poll_at,
            last_success=record.last_success_at,
            last_error=record.last_error,
            last_error_at=record.last_error_at,
            consecutive_failures=record.consecutive_failures,
            polls=record.polls,
            failures=record.failures,
        )
    elif principal.is_staff:
        health = HealthDetail(status="unknown")
    return DashMeterDetail(
        meter=row,
        address=field[2] if field else None,
        ct_ratio=_ratio(meter, now, "ct"),
        vt_ratio=_ratio(meter, now, "vt"),
        digits=meter.digits,
        decimals=meter.decimals,
        accounts=list(config.accounts) if config else list(meter.accounts),
        health=health,
        latest=readings,
        polls=polls,
        problems=problems[:30],
    )


@router.get("/rejected", response_model=DashRejectedPage, responses=responses(401, 403, 422))
def rejected_queue(
    principal: Staff,
    ctx: Ctx,
    lang: Language,
    status: Literal["open", "accepted", "all"] = "open",
    meter: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500), WholeText] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000), WholeText] = 0,
) -> DashRejectedPage:
    """Refused readings, newest first, each with its reasons and the previous accepted reading of
    the same meter and tariff (the value it was compared with)."""
    serials = principal.scope.serial_filter(meter)
    wanted = None if status == "all" else status
    records = rejected_of(ctx.store, wanted, serials, limit, offset)
    items = []
    for r in records:
        known = ctx.meters.get(r.meter_serial)
        previous = None
        if known is not None and r.ts is not None and r.tariff is not None:
            found = history(ctx.store, known.id, None, r.ts, None, None, 1, r.tariff)
            if found:
                p = found[0]
                previous = PreviousValue(
                    timestamp=p.ts, local_time=local(p.ts, ctx.tz), values=channel_values(p.values), source=p.source
                )
        items.append(
            DashRejected(
                **dict(rejected_item(r, lang)),
                meter_name=known.name if known else None,
                object=known.object if known else None,
                local_time=local(r.ts, ctx.tz) if r.ts else None,
                previous=previous,
            )
        )
    return DashRejectedPage(total=refused_count(ctx.store, serials, status=wanted), items=items)


@router.get("/audit", response_model=list[AuditEntry], responses=responses(401, 403, 422))
def audit_trail(
    principal: Staff,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500), WholeText] = 50,
) -> list[AuditEntry]:
    """The newest audit records: who changed what, when and why (a dispatcher limited to some
    objects sees only its own records)."""
    actor = None if principal.scope.everything else principal.login
    return [
        AuditEntry(
            id=row["id"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            subject=row["subject"],
            reason=row["reason"] or "",
            details=row["details"] if isinstance(row["details"], dict) else {"value": row["details"]},
        )
        for row in ctx.store.audit_log(limit, actor)
    ]


__all__ = ["protocol_list", "router"]
