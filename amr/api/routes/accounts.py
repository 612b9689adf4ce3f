"""``/api/v1/accounts/{account}``: the meters of a personal account (лицевой счёт) with the
latest reading per tariff zone, and the holder's settings (may readings be submitted for it
without login?)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from amr.api.access import Principal
from amr.api.context import ApiContext
from amr.api.deps import Ctx, CurrentUser, Holder, refuse_control_characters
from amr.api.errors import not_found, responses
from amr.api.present import kwh, local, reading_id
from amr.api.schemas import AccountMeter, AccountMeters, AccountSettings, AccountSettingsUpdate, LatestReading
from amr.core.domain import Channel
from amr.store.readings_api import latest_readings

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"], dependencies=[Depends(refuse_control_characters)])
Account = Annotated[str, Path(min_length=1, max_length=64, description="personal account number")]


def _visible(principal: Principal, ctx: ApiContext, account: str) -> None:
    if not principal.scope.sees_account(account, ctx.meters):
        raise not_found(f"no account {account!r}", f"лицевой счёт {account!r} не найден")


@router.get("/{account}/meters", response_model=AccountMeters, responses=responses(401, 404, 422))
def account_meters(principal: CurrentUser, ctx: Ctx, account: Account) -> AccountMeters:
    """Meters of the account, each with its latest accepted reading per tariff zone and its date."""
    _visible(principal, ctx, account)
    meters = [m for m in principal.scope.meters(ctx.meters) if account in m.accounts]
    latest = latest_readings(ctx.store, [m.id for m in meters], tuple(range(5)))
    items = []
    for meter in meters:
        readings = []
        for tariff in range(meter.tariffs + 1):
            found = latest.get((meter.id, tariff))
            if found is None:
                continue
            readings.append(
                LatestReading(
                    tariff=tariff,
                    timestamp=found.ts,
                    local_time=local(found.ts, ctx.tz),
                    source=found.source,
                    id=reading_id(meter.serial, tariff, found.ts),
                    **{c.value: kwh(found.values.get(c)) for c in Channel},
                )
            )
        items.append(
            AccountMeter(
                serial=meter.serial,
                name=meter.name,
                object=meter.object,
                point=meter.point,
                model=meter.model,
                tariffs=meter.tariffs,
                latest=readings,
            )
        )
    return AccountMeters(account=account, public_submission=ctx.settings.public_submission(account), meters=items)


@router.get("/{account}/settings", response_model=AccountSettings, responses=responses(401, 404, 422))
def get_settings(principal: CurrentUser, ctx: Ctx, account: Account) -> AccountSettings:
    """The account's settings."""
    _visible(principal, ctx, account)
    return AccountSettings(account=account, public_submission=ctx.settings.public_submission(account))


@router.put("/{account}/settings", response_model=AccountSettings, responses=responses(401, 403, 404, 422))
def put_settings(body: AccountSettingsUpdate, principal: Holder, ctx: Ctx, account: Account) -> AccountSettings:
    """Allow or forbid submitting readings for the account without login (the holder's choice; audited)."""
    _visible(principal, ctx, account)
    ctx.settings.set_public_submission(account, body.public_submission, principal.login, ctx.now())
    return AccountSettings(account=account, public_submission=body.public_submission)
