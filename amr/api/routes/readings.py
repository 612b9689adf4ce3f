"""``/api/v1/readings``: the cabinet's «Рассчитать» (preview), «Подтвердить» (submit) and
«Удалить показания» (delete the latest manual reading).

Customers (askue, cabinet) submit as ``web`` or ``mobile``; staff also as ``operator``.
A refused reading answers 422 with its reason code (e.g. ``lower_than_previous``) and a
message naming the previous reading. ``Idempotency-Key`` makes a retry safe: the same key
and body return the first answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse

from amr.api.deps import Ctx, CurrentUser, Language, refuse_control_characters
from amr.api.errors import ApiError, forbidden, responses
from amr.api.idempotent import run_idempotent
from amr.api.present import human_time, parse_reading_id, reading_item
from amr.api.schemas import DeletedReading, ReadingInput, SubmitInput, SubmitResult
from amr.api.submission import batch_of, parse_form, preview, result_of, submit_form, verdicts
from amr.core.domain import Source
from amr.store.readings_api import NotLatest, NotManual, delete_latest

router = APIRouter(prefix="/api/v1/readings", tags=["readings"], dependencies=[Depends(refuse_control_characters)])
CUSTOMER_SOURCES = ("web", "mobile")
MANUAL_SOURCES = ("web", "mobile", "operator")


@router.post("/preview", response_model=SubmitResult, responses=responses(401, 404, 422))
def preview_reading(body: ReadingInput, principal: CurrentUser, ctx: Ctx, lang: Language) -> SubmitResult:
    """Judge values per tariff zone without storing anything: per zone the previous reading, the
    consumption since it and the verdict with reason codes."""
    meter = principal.meter(body.meter, ctx.meters)
    form = parse_form(ctx, body, meter)
    batch = batch_of(form, Source.WEB, ctx.now(), {"preview": True})
    return result_of(form, verdicts(ctx, form, preview(ctx, batch), lang, "preview"), ctx)


@router.post(
    "",
    status_code=201,
    response_model=SubmitResult,
    responses={
        202: {"model": SubmitResult, "description": "kept for moderation (``[api] moderated_sources``)"},
        **responses(401, 403, 404, 409, 422),
    },
)
def submit_reading(
    body: SubmitInput,
    principal: CurrentUser,
    ctx: Ctx,
    lang: Language,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200, description="repeat-safe key")] = None,
) -> JSONResponse:
    """Store values per tariff zone with source web, mobile or operator: 201 with the readings,
    202 when they wait for moderation, 422 with the reason code when refused."""
    meter = principal.meter(body.meter, ctx.meters)
    allowed = MANUAL_SOURCES if principal.is_staff else CUSTOMER_SOURCES
    if body.source not in allowed:
        raise forbidden(
            f"source {body.source} is for staff; use {' or '.join(allowed)}",
            f"источник {body.source} — для персонала; используйте {' или '.join(allowed)}",
        )
    form = parse_form(ctx, body, meter)
    payload = {"meter": body.meter, "date": body.date, "values": form.raw, "channel": form.channel.value}

    def act() -> tuple[int, SubmitResult]:
        return submit_form(ctx, form, Source(body.source), principal.login, lang, payload)

    return run_idempotent(ctx, principal, idempotency_key, body.model_dump(mode="json"), lang, act)


@router.delete("/{reading_id}", response_model=DeletedReading, responses=responses(401, 403, 404, 409, 422))
def delete_reading(
    reading_id: Annotated[str, Path(min_length=1, max_length=200)],
    principal: CurrentUser,
    ctx: Ctx,
    reason: Annotated[str, Query(max_length=1000, description="why (kept in the audit trail)")] = "",
) -> DeletedReading:
    """Delete a wrongly entered reading: only a manual one (web, mobile, operator) and only the
    latest of its meter and tariff. Audited."""
    serial, tariff, ts = parse_reading_id(reading_id)
    meter = principal.meter(serial, ctx.meters)
    allowed = MANUAL_SOURCES if principal.is_staff else CUSTOMER_SOURCES
    try:
        deleted = delete_latest(
            ctx.store, meter.id, tariff, ts, allowed, principal.login, reason, ctx.now(), f"reading/{reading_id}"
        )
    except NotManual as exc:
        source = str(exc)
        if source in MANUAL_SOURCES:
            raise forbidden(
                f"a reading from {source} may be deleted by staff only",
                f"показание с источником {source} может удалить только персонал",
            ) from None
        raise ApiError(
            409,
            "not_manual_source",
            f"a reading from {source} was not typed in by a person; it cannot be deleted",
            f"показание из источника {source} получено не вручную; его нельзя удалить",
        ) from None
    except NotLatest as exc:
        raise ApiError(
            409,
            "not_latest",
            f"only the latest reading can be deleted; a later one exists ({human_time(exc.later, ctx.tz, 'en')})",
            f"удалить можно только последнее показание; есть более позднее ({human_time(exc.later, ctx.tz, 'ru')})",
        ) from None
    return DeletedReading(deleted=reading_item(meter, deleted, ctx.tz))
