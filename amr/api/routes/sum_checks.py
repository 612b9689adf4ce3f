"""``GET /api/v1/dispatch/sum-mismatches``: the sum checks that failed and are kept (`amr.store.sum_checks`)
— pairs of register readings whose intervals do not add up to the register delta within the register's
resolution, a sign of a clock or ratio error — for the meters the dispatcher may see."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from amr.api.deps import Ctx, Staff, refuse_control_characters
from amr.api.errors import responses
from amr.api.present import kwh, local, period
from amr.api.routes.meters import From, To
from amr.api.schemas_intervals import SumMismatchItem
from amr.store.sum_checks import kept_mismatches

router = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"], dependencies=[Depends(refuse_control_characters)])


class KeptSumMismatch(SumMismatchItem):
    """A kept sum-check failure of one meter."""

    serial: str
    local_start: str = Field(description="the earlier reading's time in the site's zone")
    found_at: datetime = Field(description="when the check last found it (UTC)")


@router.get("/sum-mismatches", response_model=list[KeptSumMismatch], responses=responses(401, 403, 422))
def sum_mismatches(
    principal: Staff,
    ctx: Ctx,
    serial: Annotated[str | None, Query(alias="meter", min_length=1, max_length=64)] = None,
    start: From = None,
    end: To = None,
) -> list[KeptSumMismatch]:
    """Kept sum mismatches (reason code sum_mismatch) of the meters the caller may see (all, or `meter`),
    newest first, at most 1000; `from`/`to` bound the earlier reading's time."""
    visible = {m.serial for m in principal.scope.meters(ctx.meters)}
    wanted = {serial} & visible if serial is not None else visible
    begin, finish = period(start, end, ctx.tz)
    return [
        KeptSumMismatch(
            serial=k.serial,
            channel=k.mismatch.channel,
            start=k.mismatch.start,
            end=k.mismatch.end,
            registers=kwh(k.mismatch.register_wh) or "0",
            intervals=kwh(k.mismatch.intervals_wh) or "0",
            tolerance=kwh(k.mismatch.tolerance_wh) or "0",
            local_start=local(k.mismatch.start, ctx.tz),
            found_at=k.found_at,
        )
        for k in kept_mismatches(ctx.store, wanted, begin, finish)
    ]
