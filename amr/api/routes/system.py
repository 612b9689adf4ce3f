"""``/healthz`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy import text

from amr.api.deps import Ctx, refuse_control_characters
from amr.api.errors import ApiError, responses
from amr.api.metrics import CONTENT_TYPE
from amr.api.schemas import Health
from amr.errors import StoreError
from amr.store.store import translate_errors

router = APIRouter(tags=["system"], dependencies=[Depends(refuse_control_characters)])


@router.get("/healthz", response_model=Health, responses=responses(503))
def healthz(ctx: Ctx) -> Health:
    """Whether the store answers, and whether the collector runs in this process."""
    try:
        with translate_errors(), ctx.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except StoreError:
        raise ApiError(
            503, "store_unavailable", "the database is unavailable", "база данных недоступна", retry_after=5
        ) from None
    return Health(status="ok", database="ok", collector="running" if ctx.poller is not None else "absent")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(ctx: Ctx) -> Response:
    """API latency, readings accepted and refused by reason, and whatever the collector registered."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
