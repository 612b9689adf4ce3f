"""``/api/v1/auth``: log in for a bearer token, log out, who am I.

Failed logins are throttled per login and per client address (``[api] login_attempts``
per ``login_window``): the next attempt is answered 429 ``throttled`` with Retry-After. Every
attempt takes a slot before its password is checked (a right password gives it back), so no
more than ``login_attempts`` guesses are ever checked per window, however many run at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from amr.api.deps import ClientAddress, Ctx, CurrentUser, refuse_control_characters
from amr.api.errors import ApiError, responses
from amr.api.schemas import LoginRequest, Me, TokenResponse
from amr.api.security import digest, new_token
from amr.errors import NotFound

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], dependencies=[Depends(refuse_control_characters)])


@router.post("/token", response_model=TokenResponse, responses=responses(401, 422, 429))
def login(body: LoginRequest, ctx: Ctx, address: ClientAddress) -> TokenResponse:
    """Exchange login and password for an opaque bearer token that expires after ``[api] token_ttl``."""
    api = ctx.api
    now = ctx.now()
    login_key = body.login.strip().lower()
    slot = ctx.throttle.reserve((("login", login_key), ("address", address)), api.login_attempts, api.login_window, now)
    if not slot.granted:
        raise ApiError(
            429,
            "throttled",
            f"too many failed logins; try again in {slot.wait} s",
            f"слишком много неудачных попыток входа; повторите через {slot.wait} с",
            retry_after=slot.wait,
        )
    try:
        user = ctx.users.get(body.login.strip())
    except NotFound:
        user = None
    if not ctx.passwords.verify(user.password_hash if user else None, body.password) or user is None:
        raise ApiError(401, "unauthorized", "wrong login or password", "неверный логин или пароль")
    ctx.throttle.refund(slot)
    if user.disabled:
        raise ApiError(401, "user_disabled", "this user is disabled", "пользователь отключён")
    ctx.throttle.clear("login", login_key)
    token = new_token()
    expires_at = now + api.token_ttl
    ctx.users.add_token(user.id, digest(token), now, expires_at)
    return TokenResponse(access_token=token, expires_at=expires_at, expires_in=int(api.token_ttl.total_seconds()))


@router.post("/logout", status_code=204, response_class=Response, responses=responses(401))
def logout(principal: CurrentUser, ctx: Ctx) -> Response:
    """Revoke the bearer token of this request (API keys are revoked with ``amr users``)."""
    if principal.token_hash is not None:
        ctx.users.revoke_token(principal.token_hash)
    return Response(status_code=204)


@router.get("/me", response_model=Me, responses=responses(401))
def me(principal: CurrentUser) -> Me:
    """The caller's login, role and links."""
    user = principal.user
    return Me(
        login=user.login,
        name=user.name,
        role=user.role,
        accounts=sorted(user.accounts),
        meters=sorted(user.meters),
        objects=sorted(user.objects),
    )
