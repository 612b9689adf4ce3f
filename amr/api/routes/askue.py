"""``/api/v1/askue``: the АСКУЭ table of a cabinet — every meter of the caller with the four
channels of its latest accepted reading of tariff 0 and the time it was obtained.

One index probe per meter (see `amr.store.readings_api.latest_readings`), however long the
history.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from amr.api.deps import Ctx, CurrentUser, refuse_control_characters
from amr.api.errors import responses
from amr.api.present import kwh, local
from amr.api.schemas import AskueMeter
from amr.core.domain import Channel
from amr.store.readings_api import latest_readings

router = APIRouter(prefix="/api/v1/askue", tags=["askue"], dependencies=[Depends(refuse_control_characters)])


@router.get("/meters", response_model=list[AskueMeter], responses=responses(401))
def askue_meters(principal: CurrentUser, ctx: Ctx) -> list[AskueMeter]:
    """Every meter the caller may see: object, meter name, serial, A+/A- kWh, R+/R- kvarh, obtained at."""
    meters = principal.scope.meters(ctx.meters)
    latest = latest_readings(ctx.store, [m.id for m in meters], (0,))
    rows = []
    for meter in meters:
        reading = latest.get((meter.id, 0))
        values = reading.values if reading else {}
        rows.append(
            AskueMeter(
                object=meter.object,
                meter=meter.name,
                serial=meter.serial,
                a_plus=kwh(values.get(Channel.A_PLUS)),
                a_minus=kwh(values.get(Channel.A_MINUS)),
                r_plus=kwh(values.get(Channel.R_PLUS)),
                r_minus=kwh(values.get(Channel.R_MINUS)),
                obtained_at=reading.ts if reading else None,
                local_time=local(reading.ts, ctx.tz) if reading else None,
            )
        )
    return rows
