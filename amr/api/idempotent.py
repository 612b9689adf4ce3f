"""``Idempotency-Key``: the same key and body, from the same user, get the first answer again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from amr.api.access import Principal
from amr.api.context import ApiContext
from amr.api.errors import ApiError, Lang, invalid


def run_idempotent(
    ctx: ApiContext,
    principal: Principal,
    key: str | None,
    request: dict[str, Any],
    lang: Lang,
    action: Callable[[], tuple[int, BaseModel]],
) -> JSONResponse:
    """Run `action` once per (user, key); replay its answer (success or refusal) for a repeated request."""
    if key is None:
        status, model = action()
        return JSONResponse(model.model_dump(mode="json"), status_code=status)
    if not 1 <= len(key) <= 200:
        raise invalid("Idempotency-Key", "must be 1 to 200 characters", "должен быть от 1 до 200 символов")
    request_hash = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    user_id = principal.user.id
    kept = ctx.idempotency.reserve(user_id, key, request_hash, ctx.now(), ctx.api.idempotency_ttl)
    if kept is not None:
        if kept.request_hash != request_hash:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request; use a new key",
                "этот Idempotency-Key уже использован с другим запросом; возьмите новый ключ",
                field="Idempotency-Key",
            )
        if kept.status_code == 0:
            raise ApiError(
                409,
                "idempotency_in_progress",
                "the first request with this key is still running; retry shortly",
                "первый запрос с этим ключом ещё выполняется; повторите чуть позже",
                retry_after=1,
            )
        return JSONResponse(
            json.loads(kept.body), status_code=kept.status_code, headers={"Idempotent-Replayed": "true"}
        )
    headers: dict[str, str] = {}
    try:
        status, model = action()
        body = model.model_dump(mode="json")
    except ApiError as exc:
        status, body, headers = exc.status, exc.body(lang), exc.headers
    except BaseException:
        ctx.idempotency.release(user_id, key)
        raise
    ctx.idempotency.finish(user_id, key, status, json.dumps(body, ensure_ascii=False))
    return JSONResponse(body, status_code=status, headers=headers)
