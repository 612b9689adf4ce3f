"""``GET /api/v1/dispatch/collectors``: the dispatcher's view of the collectors sharing the buses."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from amr.api.deps import Ctx, Staff, refuse_control_characters
from amr.api.errors import responses
from amr.api.schemas_collectors import CollectorsStatus
from amr.collector.status import lease_status

router = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"], dependencies=[Depends(refuse_control_characters)])


@router.get("/collectors", response_model=CollectorsStatus, responses=responses(401, 403, 503))
def collectors(principal: Staff, ctx: Ctx) -> CollectorsStatus:
    """Which collector holds which bus (or group of Modbus TCP devices), since when, and each
    collector's last heartbeat; on SQLite (one collector) `sharing` is false and `note` says why.
    A dispatcher of some objects sees the buses of their meters and the collectors holding them."""
    report = lease_status(ctx.app.config, ctx.store)
    scope = principal.scope
    if not scope.everything:
        buses = {m.bus for m in ctx.app.config.meters if m.bus is not None and scope.sees(m.serial)}
        report["leases"] = [lease for lease in report["leases"] if lease["bus"] in buses]
        holders = {lease["holder"] for lease in report["leases"]}
        report["collectors"] = [c for c in report["collectors"] if c["id"] in holders]
    return CollectorsStatus.model_validate(report)
