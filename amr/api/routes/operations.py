"""Meter operations: the relay (dispatchers and admins) and power quality (whoever sees the meter).

- ``POST /api/v1/dispatch/meters/{serial}/relay`` queues a relay command (202); refused with 403
  ``forbidden`` for ``askue`` and ``cabinet``, 404 for a meter outside the caller's objects, 409
  ``no_relay`` for a meter whose protocol has no relay command. The collector carries it out.
- ``GET /api/v1/dispatch/relay-commands/{id}``: one command and its outcome.
- ``GET /api/v1/dispatch/meters/{serial}/relay``: the last state read back and the newest commands.
- ``GET /api/v1/meters/{serial}/quality?from&to``: instantaneous values and quality events.

Commands past their deadline are expired (and audited) when they are looked at, so a command to a
meter no collector reaches is seen as expired, not queued, once its deadline has passed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from amr.api.deps import Ctx, CurrentUser, Staff, refuse_control_characters
from amr.api.errors import ApiError, invalid, not_found, responses
from amr.api.present import period
from amr.api.routes.meters import From, Serial, To
from amr.api.schemas import WholeText
from amr.api.schemas_operations import (
    QualityEventOut,
    QualitySeries,
    RelayCommandOut,
    RelayInput,
    RelayStatus,
)
from amr.drivers.quality import QUANTITIES, unit_of
from amr.drivers.registry import PROTOCOLS
from amr.store import quality as quality_store
from amr.store import relay_commands as commands

router = APIRouter(tags=["operations"], dependencies=[Depends(refuse_control_characters)])
CommandId = Annotated[int, Path(ge=1, le=2**31 - 1), WholeText]
MAX_QUALITY_PERIOD = timedelta(days=31)


def _out(command: commands.RelayCommand) -> RelayCommandOut:
    return RelayCommandOut.model_validate(command, from_attributes=True)

def _has_relay(ctx: Ctx, serial: str) -> bool:
    configured = next((m for m in ctx.app.config.meters if m.serial == serial), None)
    if configured is None or configured.bus is None:
        return False
    kind = next((b.kind for b in ctx.app.config.buses if b.name == configured.bus), None)
    spec = PROTOCOLS.get(kind or "")
    return spec is not None and "relay" in spec.capabilities


@router.post("/api/v1/dispatch/meters/{serial}/relay", response_model=RelayCommandOut,
             status_code=status.HTTP_202_ACCEPTED, responses=responses(401, 403, 404, 409, 422))
def request_relay(serial: Serial, body: RelayInput, principal: Staff, ctx: Ctx) -> RelayCommandOut:
    """Queue a relay command (disconnect, reconnect, or read the state) for the collector; audited."""
    meter = principal.meter(serial, ctx.meters)
    if not _has_relay(ctx, meter.serial):
        raise ApiError(409, "no_relay",
                       f"meter {meter.serial} is not on a bus whose protocol switches a relay (DLMS/COSEM)",
                       f"счётчик {meter.serial} не на шине с протоколом, управляющим реле (DLMS/COSEM)")
    now = ctx.now()
    limits = ctx.app.config.relay
    deadline = body.deadline or now + limits.deadline
    if deadline <= now:
        raise invalid("deadline", "must be in the future", "должен быть в будущем", code="invalid_deadline")
    if deadline - now > limits.max_deadline:
        raise invalid("deadline", f"may be at most {limits.max_deadline} ahead ([relay] max_deadline)",
                      f"не дальше {limits.max_deadline} от текущего момента ([relay] max_deadline)",
                      code="invalid_deadline")
    command = commands.enqueue(ctx.store, meter.id, meter.serial, body.action, body.reason, principal.login, now,
                               deadline)
    return _out(command)


@router.get("/api/v1/dispatch/relay-commands/{command_id}", response_model=RelayCommandOut,
            responses=responses(401, 403, 404, 422))
def relay_command(command_id: CommandId, principal: Staff, ctx: Ctx) -> RelayCommandOut:
    """One relay command and its outcome."""
    commands.expire_overdue(ctx.store, ctx.now())
    command = commands.get(ctx.store, command_id)
    if command is None or not principal.scope.sees(command.serial):
        raise not_found(f"no relay command {command_id}", f"команда реле {command_id} не найдена")
    return _out(command)


@router.get("/api/v1/dispatch/meters/{serial}/relay", response_model=RelayStatus,
            responses=responses(401, 403, 404, 422))
def relay_status(serial: Serial, principal: Staff, ctx: Ctx) -> RelayStatus:
    """The meter's relay as last read back, and its newest commands."""
    meter = principal.meter(serial, ctx.meters)
    commands.expire_overdue(ctx.store, ctx.now())
    last = commands.last_known_state(ctx.store, meter.id)
    return RelayStatus(
        serial=meter.serial,
        state=last.state if last else None,
        supplied=last.supplied if last else None,
        read_at=last.finished_at if last else None,
        commands=[_out(c) for c in commands.of_meter(ctx.store, meter.id)],
    )


@router.get("/api/v1/meters/{serial}/quality", response_model=QualitySeries, responses=responses(401, 404, 422))
def meter_quality(serial: Serial, principal: CurrentUser, ctx: Ctx, start: From = None, end: To = None
                  ) -> QualitySeries:
    """Instantaneous values (V, A, W, Hz, power factor) and the quality events of a period (default:
    the last day; at most 31 days)."""
    meter = principal.meter(serial, ctx.meters)
    begin, finish = period(start, end, ctx.tz)
    finish = finish or ctx.now()
    begin = begin or finish - timedelta(days=1)
    if finish <= begin:
        raise invalid("from", "must be earlier than to", "должно быть раньше to", code="invalid_period")
    if finish - begin > MAX_QUALITY_PERIOD:
        raise invalid("from", "the period is longer than 31 days; shorten it", "период длиннее 31 дня; сократите его",
                      code="invalid_period")
    rows = quality_store.samples(ctx.store, meter.id, begin, finish)
    found = quality_store.events(ctx.store, meter.id, begin, finish)
    return QualitySeries(
        meter=meter.serial,
        units={q: unit_of(q) for q in QUANTITIES},
        limits={k: {"min": v.min, "max": v.max} for k, v in ctx.app.config.quality.limits.items()},
        samples=rows,
        events=[QualityEventOut(ts=e.ts, quantity=e.quantity, value=e.value, threshold=e.threshold,
                                kind=e.kind)
                for e in found],
    )
