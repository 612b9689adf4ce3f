"""``/api/v1/public/readings``: submitting a reading without login, by account number and
meter serial — unless the account holder has forbidden it. Throttled per client address
(``[api] public_attempts`` per ``public_window``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from amr.api.deps import ClientAddress, Ctx, Language, refuse_control_characters
from amr.api.errors import ApiError, not_found, responses
from amr.api.schemas import PublicInput, SubmitResult
from amr.api.submission import parse_form, submit_form
from amr.core.domain import Source

router = APIRouter(prefix="/api/v1/public", tags=["public"], dependencies=[Depends(refuse_control_characters)])


@router.post(
    "/readings",
    status_code=201,
    response_model=SubmitResult,
    responses={
        202: {"model": SubmitResult, "description": "kept for moderation"},
        **responses(403, 404, 422, 429),
    },
)
def public_reading(body: PublicInput, ctx: Ctx, address: ClientAddress, lang: Language) -> JSONResponse:
    """Submit values per tariff zone for a meter of an account (source web), without login."""
    api = ctx.api
    now = ctx.now()
    slot = ctx.throttle.reserve((("public", address),), api.public_attempts, api.public_window, now)
    if not slot.granted:
        raise ApiError(
            429,
            "throttled",
            f"too many submissions from this address; try again in {slot.wait} s",
            f"слишком много показаний с этого адреса; повторите через {slot.wait} с",
            retry_after=slot.wait,
        )
    meter = ctx.meters.get(body.meter)
    if meter is None or body.account not in meter.accounts:
        raise not_found(
            "no such meter on this account; check the account number and the meter serial",
            "у этого лицевого счёта нет такого счётчика; проверьте номер счёта и номер счётчика",
        )
    if not ctx.settings.public_submission(body.account):
        raise ApiError(
            403,
            "public_submission_forbidden",
            "the account holder has forbidden submitting readings without login; log in to the cabinet",
            "владелец лицевого счёта запретил передачу показаний без входа; войдите в личный кабинет",
        )
    form = parse_form(ctx, body, meter)
    payload = {"account": body.account, "meter": body.meter, "date": body.date, "values": form.raw, "public": True}
    status, result = submit_form(ctx, form, Source.WEB, f"public:{address}", lang, payload)
    return JSONResponse(result.model_dump(mode="json"), status_code=status)
