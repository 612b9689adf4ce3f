"""Route dependencies, as ``Annotated[..., Depends(...)]`` aliases.

Authentication is checked on every request against the store, so a disabled user or a
revoked token loses access at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from amr.api.access import HOLDERS, STAFF, Principal, scope_for
from amr.api.context import ApiContext
from amr.api.errors import ApiError, Lang, control_character, pick_language
from amr.api.schemas import has_control
from amr.api.security import digest
from amr.store.users import User

bearer = HTTPBearer(auto_error=False, description="a token from POST /api/v1/auth/token", scheme_name="bearer")
api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key of a service account", scheme_name="apiKey"
)


def get_context(request: Request) -> ApiContext:
    """The API's shared state."""
    context: ApiContext = request.app.state.amr
    return context


Ctx = Annotated[ApiContext, Depends(get_context)]


def get_language(
    accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Lang:
    """Russian or English by ``Accept-Language`` (Russian by default)."""
    return pick_language(accept_language)


Language = Annotated[Lang, Depends(get_language)]


def refuse_control_characters(request: Request) -> None:
    """422 naming the query or path parameter that holds a control character (e.g. NUL)."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if has_control(str(name)) or has_control(str(value)):
            raise control_character(str(name))


def get_client_address(request: Request, ctx: Ctx) -> str:
    """The client's address; behind a trusted proxy, the last address it adds to X-Forwarded-For."""
    peer = request.client.host if request.client else "unknown"
    if peer in ctx.api.trusted_proxies:
        forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()]
        if forwarded:
            return forwarded[-1]
    return peer


ClientAddress = Annotated[str, Depends(get_client_address)]


def _unauthorized(code: str, en: str, ru: str) -> ApiError:
    return ApiError(401, code, en, ru, headers={"WWW-Authenticate": "Bearer"})


def _usable(user: User) -> User:
    if user.disabled:
        raise _unauthorized("user_disabled", "this user is disabled", "пользователь отключён")
    return user


def get_principal(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    key: Annotated[str | None, Depends(api_key)],
) -> Principal:
    """The caller, by bearer token or API key; 401 otherwise."""
    if credentials is not None and credentials.credentials:
        token_hash = digest(credentials.credentials)
        found = ctx.users.by_token(token_hash)
        if found is None:
            raise _unauthorized(
                "unauthorized",
                "unknown or revoked token; log in again",
                "неизвестный или отозванный токен; войдите снова",
            )
        user, expires_at = found
        if expires_at <= ctx.now():
            raise _unauthorized(
                "token_expired", "the token has expired; log in again", "срок действия токена истёк; войдите снова"
            )
        user = _usable(user)
        return Principal(user, scope_for(user, ctx.meters), "token", token_hash)
    if key:
        user_or_none = ctx.users.by_api_key(digest(key))
        if user_or_none is None:
            raise _unauthorized("unauthorized", "unknown or revoked API key", "неизвестный или отозванный ключ API")
        user = _usable(user_or_none)
        return Principal(user, scope_for(user, ctx.meters), "api_key")
    raise _unauthorized(
        "unauthorized",
        "log in: send Authorization: Bearer <token> or X-API-Key",
        "требуется вход: передайте Authorization: Bearer <токен> или X-API-Key",
    )


CurrentUser = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets only `roles` through (403 forbidden otherwise)."""

    def check(principal: CurrentUser) -> Principal:
        principal.require(*roles)
        return principal

    return check


Staff = Annotated[Principal, Depends(require_roles(*STAFF))]
"""Dispatchers and admins."""

Holder = Annotated[Principal, Depends(require_roles(*HOLDERS, "admin"))]
"""Account holders (askue, cabinet) and admins."""
