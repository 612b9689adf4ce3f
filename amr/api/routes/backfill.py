"""``GET /api/v1/dispatch/backfill``: the dispatcher's view of back-fill — per meter and channel, how far
its profile has been read, what was lost (older than the meter's memory) and the last error."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from amr.api.deps import Ctx, Staff, refuse_control_characters
from amr.api.errors import responses
from amr.store.backfill_state import BackfillState

router = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"], dependencies=[Depends(refuse_control_characters)])


class BackfillChannel(BaseModel):
    """One channel of one meter."""

    channel: str = Field(description="a_plus, a_minus, r_plus or r_minus")
    read_until: datetime = Field(description="every interval before it was read from the meter or declared lost (UTC)")
    lost_from: datetime | None = Field(description="the latest range older than the meter's memory: start")
    lost_until: datetime | None = Field(description="... and end")
    lost_hours: float = Field(description="hours declared unrecoverable, all told")
    last_error: str | None = Field(description="why the last chunk failed, if it did")
    last_attempt: datetime | None


class BackfillMeter(BaseModel):
    """One meter whose profile is back-filled."""

    serial: str
    behind_hours: float = Field(description="hours from the earliest channel's read_until to now")
    channels: list[BackfillChannel]


@router.get("/backfill", response_model=list[BackfillMeter], responses=responses(401, 403, 422))
def backfill_state(
    principal: Staff,
    ctx: Ctx,
    serial: Annotated[str | None, Query(alias="meter", min_length=1, max_length=64)] = None,
) -> list[BackfillMeter]:
    """Back-fill progress of the meters the caller may see (all, or `meter`); meters never back-filled are absent."""
    visible = {m.serial for m in principal.scope.meters(ctx.meters)}
    wanted = [serial] if serial is not None else sorted(visible)
    state = BackfillState(ctx.store).load([s for s in wanted if s in visible])
    now = ctx.now()
    items = []
    for meter_serial in sorted(state):
        channels = state[meter_serial]
        behind = max(0.0, (now - min(p.read_until for p in channels.values())).total_seconds())
        items.append(
            BackfillMeter(
                serial=meter_serial,
                behind_hours=round(behind / 3600, 2),
                channels=[
                    BackfillChannel(
                        channel=p.channel.value,
                        read_until=p.read_until,
                        lost_from=p.lost_from,
                        lost_until=p.lost_until,
                        lost_hours=round(p.lost_total_s / 3600, 2),
                        last_error=p.last_error,
                        last_attempt=p.last_attempt,
                    )
                    for p in channels.values()
                ],
            )
        )
    return items
