"""``/api/v1/moderation``: manual readings from ``[api] moderated_sources`` wait as pending (not
counted) until an operator accepts them — then they go through the validation pipeline — or
refuses them with a reason. Every decision is audited."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from amr.api.access import Principal
from amr.api.context import ApiContext
from amr.api.deps import Ctx, Language, Staff, refuse_control_characters
from amr.api.errors import ApiError, not_found, responses
from amr.api.present import channel_values, local
from amr.api.schemas import AcceptInput, ModerationResult, PendingItem, ResolveInput, WholeText
from amr.api.submission import Form, judge_and_store, localized_refusal, verdicts
from amr.core.domain import CHANNELS, Channel, IncomingReading, Source
from amr.errors import NotFound
from amr.store import Session
from amr.store.pending import PendingRecord, resolve_in
from amr.validation import BatchResult

router = APIRouter(prefix="/api/v1/moderation", tags=["moderation"], dependencies=[Depends(refuse_control_characters)])
PendingId = Annotated[int, Path(ge=1, le=2**31 - 1), WholeText]


def _item(record: PendingRecord, ctx: ApiContext) -> PendingItem:
    return PendingItem(
        id=record.id,
        meter=record.meter_serial,
        timestamp=record.ts,
        local_time=local(record.ts, ctx.tz),
        tariff=record.tariff,
        values=channel_values(record.values),
        source=record.source,
        submitted_by=record.submitted_by,
        submitted_at=record.submitted_at,
        status=record.status,
        resolved_by=record.resolved_by,
        resolved_at=record.resolved_at,
        resolution=record.resolution,
    )


def _visible(ctx: ApiContext, principal: Principal, pending_id: int) -> PendingRecord:
    try:
        record = ctx.pending.get(pending_id)
    except NotFound:
        record = None
    if record is None or not principal.scope.sees(record.meter_serial) or record.meter_serial not in ctx.meters:
        raise not_found(f"no pending reading {pending_id}", f"показание {pending_id} на проверке не найдено")
    return record


class _Resolved(Exception):
    """Another operator resolved the item first: the transaction is rolled back."""


def _already(record: PendingRecord) -> ApiError:
    return ApiError(
        409,
        "already_resolved",
        f"pending reading {record.id} is already {record.status}",
        f"показание {record.id} уже обработано ({record.status})",
    )


@router.get("/pending", response_model=list[PendingItem], responses=responses(401, 403, 422))
def list_pending(
    principal: Staff,
    ctx: Ctx,
    status: Literal["pending", "accepted", "rejected", "refused", "all"] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000), WholeText] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000), WholeText] = 0,
) -> list[PendingItem]:
    """Readings waiting for an operator, oldest first."""
    records = ctx.pending.find(None if status == "all" else status, principal.scope.serial_filter(), limit, offset)
    return [_item(r, ctx) for r in records]


@router.post(
    "/pending/{pending_id}/accept", response_model=ModerationResult, responses=responses(401, 403, 404, 409, 422)
)
def accept_pending(
    pending_id: PendingId, principal: Staff, ctx: Ctx, lang: Language, body: AcceptInput | None = None
) -> ModerationResult:
    """Accept a pending reading: it goes through the validation pipeline now (422 with the reason
    code if the pipeline refuses it; it is then kept among refused readings)."""
    record = _visible(ctx, principal, pending_id)
    if record.status != "pending":
        raise _already(record)
    meter = ctx.meters[record.meter_serial]
    channel = next((c for c in CHANNELS if record.values.get(c) is not None), Channel.A_PLUS)
    now = ctx.now()
    reading = IncomingReading(
        meter=record.meter_serial,
        ts=record.ts,
        tariff=record.tariff,
        values=dict(record.values),
        source=Source(record.source),
        payload={**record.payload, "pending_id": record.id, "accepted_by": principal.login},
        received_at=now,
    )
    note = body.reason if body is not None else ""

    def work(session: Session) -> tuple[BatchResult, bool]:
        # one transaction under the series lock: the verdict, the reading (or its refusal), the
        # item's new status and both audit records; nothing of it stays when any part fails
        result, stored = judge_and_store(session, ctx, [reading], record.submitted_by)
        status = "accepted" if stored else "rejected"
        if not resolve_in(session.conn, pending_id, status, principal.login, note, now):
            raise _Resolved
        return result, stored

    try:
        result, stored = ctx.store.write(work)
    except _Resolved:
        raise _already(ctx.pending.get(pending_id)) from None
    form = Form(meter, record.ts, channel, {record.tariff: record.values.get(channel) or 0}, {})
    found = verdicts(ctx, form, result, lang, "stored" if stored else "withheld")
    for verdict in found:
        ctx.metrics.count_reading(record.source, verdict.status, [r.code for r in verdict.reasons])
    if not stored:
        raise localized_refusal(found, lang)
    return ModerationResult(pending=_item(ctx.pending.get(pending_id), ctx), verdict=found[0])


@router.post(
    "/pending/{pending_id}/refuse", response_model=ModerationResult, responses=responses(401, 403, 404, 409, 422)
)
def refuse_pending(pending_id: PendingId, body: ResolveInput, principal: Staff, ctx: Ctx) -> ModerationResult:
    """Refuse a pending reading with a reason (audited); it is never counted."""
    record = _visible(ctx, principal, pending_id)
    if not ctx.pending.resolve(pending_id, "refused", principal.login, body.reason, ctx.now(), expect="pending"):
        raise _already(ctx.pending.get(pending_id))
    ctx.metrics.count_reading(record.source, "refused", ["moderation"])
    return ModerationResult(pending=_item(ctx.pending.get(pending_id), ctx))
