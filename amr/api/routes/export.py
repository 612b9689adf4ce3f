"""``/api/v1/export``: readings as CSV (the ``amr import`` format, so it can be imported again)
and the wholesale market's макет 80020 XML for one day (windows-1251)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from amr.api.deps import Ctx, CurrentUser, Staff, refuse_control_characters
from amr.api.errors import ApiError, invalid, responses
from amr.api.present import kwh, parse_day, period
from amr.api.schemas import DAY_OR_MOMENT, DayText
from amr.core.domain import CHANNELS
from amr.outputs.export80020 import ENCODING, build_80020
from amr.store.exports import next_export_number
from amr.store.readings_api import stream_readings

router = APIRouter(prefix="/api/v1/export", tags=["export"], dependencies=[Depends(refuse_control_characters)])
MAX_DAYS = 366
CSV_HEADER = ["meter", "timestamp", "tariff", *(c.value for c in CHANNELS), "source"]


@router.get(
    "/readings.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, UTF-8"}, **responses(401, 404, 422)},
)
def readings_csv(
    principal: CurrentUser,
    ctx: Ctx,
    start: Annotated[
        Annotated[str, DAY_OR_MOMENT],
        Query(alias="from", max_length=40, description="date (site's zone) or ISO datetime"),
    ],
    end: Annotated[
        Annotated[str, DAY_OR_MOMENT],
        Query(alias="to", max_length=40, description="date (whole day included) or ISO datetime"),
    ],
    meter: Annotated[str | None, Query(max_length=64, description="one meter; default every visible meter")] = None,
) -> StreamingResponse:
    """Accepted readings of the period (at most a year) as CSV with header
    ``meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus,source`` (kWh/kvarh, local times)."""
    tz = ctx.tz
    for field, text in (("from", start), ("to", end)):
        if not text.strip():
            raise invalid(field, "is empty; give a date (2026-01-31)", "пусто; укажите дату (2026-01-31)")
    begin, finish = period(start, end, tz)
    assert begin is not None and finish is not None
    if finish - begin > timedelta(days=MAX_DAYS):
        raise invalid(
            "to",
            f"the period is longer than {MAX_DAYS} days; export it in parts",
            f"период длиннее {MAX_DAYS} дней; выгружайте по частям",
            code="period_too_long",
        )
    meters = [principal.meter(meter, ctx.meters)] if meter else principal.scope.meters(ctx.meters)
    serials = {m.id: m.serial for m in meters}

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for reading in stream_readings(ctx.store, list(serials), begin, finish):
            writer.writerow(
                [
                    serials[reading.meter_id],
                    reading.ts.astimezone(tz).isoformat(),
                    reading.tariff,
                    *(kwh(reading.values.get(c)) or "" for c in CHANNELS),
                    reading.source,
                ]
            )
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = f"readings_{begin.astimezone(tz).date():%Y%m%d}.csv"
    return StreamingResponse(
        rows(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get(
    "/80020",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "макет 80020, windows-1251"},
        **responses(401, 403, 409, 422),
    },
)
def export_80020(
    principal: Staff,
    ctx: Ctx,
    day: Annotated[DayText, Query(alias="date", max_length=10, description="YYYY-MM-DD, site's zone")],
) -> Response:
    """Half-hour energy of every visible metering point for one day as макет 80020 (numbered, logged)."""
    chosen = parse_day(day, "date")
    export = ctx.app.config.export
    if not (export.sender_inn and export.sender_name and export.area_inn and export.area_name):
        raise ApiError(
            409,
            "export_not_configured",
            "set [export] sender_inn, sender_name, area_inn and area_name in the configuration",
            "задайте в конфигурации [export] sender_inn, sender_name, area_inn и area_name",
        )
    now = ctx.now()
    number = next_export_number(ctx.store, "80020", chosen.isoformat(), principal.login, now)
    body = build_80020(ctx.store, principal.scope.meters(ctx.meters), chosen, ctx.tz, export, number, now)
    name = f"80020_{export.area_inn}_{chosen:%Y%m%d}_{number}.xml"
    return Response(
        body,
        media_type=f"application/xml; charset={ENCODING}",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
