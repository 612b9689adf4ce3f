"""The API's one error boundary: every error becomes ``{"code", "message", ...}``.

Codes are stable and machine-readable (the VEE reason codes among them); messages are in
Russian or English by ``Accept-Language`` (Russian by default). Bad input always gets a 4xx:
FastAPI's own request validation errors are reformatted to name the field and the fix, and
the project's exceptions (`amr.errors`) are translated here.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from amr.api.schemas import ErrorBody, FieldProblem, TariffVerdict
from amr.errors import AmrError, InputError, NotFound, StoreError, StoreUnavailable
from amr.store import StoreConflict

Lang = Literal["ru", "en"]
log = logging.getLogger("amr.api")


def pick_language(header: str | None) -> Lang:
    """The best of Russian and English for an ``Accept-Language`` header; Russian by default."""
    if not header:
        return "ru"
    choices: list[tuple[float, int, Lang]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("ru", "en"):
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            choices.append((-quality, index, "ru" if primary == "ru" else "en"))
    return min(choices)[2] if choices else "ru"


class ApiError(Exception):
    """An error answer: HTTP status, stable code and the message in both languages."""

    def __init__(
        self,
        status: int,
        code: str,
        en: str,
        ru: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: int | None = None,
        readings: list[TariffVerdict] | None = None,
    ) -> None:
        super().__init__(f"{code}: {en}")
        self.status = status
        self.code = code
        self.en = en
        self.ru = ru
        self.field = field
        self.headers = dict(headers or {})
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)
        self.readings = readings

    def body(self, lang: Lang) -> dict[str, Any]:
        """The JSON body in `lang`."""
        return ErrorBody(
            code=self.code,
            message=self.ru if lang == "ru" else self.en,
            field=self.field,
            retry_after=self.retry_after,
            readings=self.readings,
        ).model_dump(mode="json", exclude_none=True)

    def response(self, lang: Lang) -> JSONResponse:
        """The JSON response in `lang`."""
        return JSONResponse(self.body(lang), status_code=self.status, headers=self.headers)


def not_found(en: str = "not found", ru: str = "не найдено") -> ApiError:
    """404 ``not_found``: used alike for what does not exist and for what the caller may not see."""
    return ApiError(404, "not_found", en, ru)


def invalid(field: str, en: str, ru: str, code: str = "invalid_input") -> ApiError:
    """422 naming the wrong field and how to fix it."""
    return ApiError(422, code, f"{field}: {en}", f"{field}: {ru}", field=field)


def control_character(field: str) -> ApiError:
    """422 for a field holding a control character (PostgreSQL refuses NUL in text)."""
    return invalid(field, *CONTROL_FIX)


def forbidden(en: str, ru: str) -> ApiError:
    """403 ``forbidden``: the caller's role may not do this."""
    return ApiError(403, "forbidden", en, ru)


_DESCRIPTIONS = {
    400: "bad request",
    401: "no or invalid credentials (codes unauthorized, token_expired, user_disabled)",
    403: "the caller's role may not do this (code forbidden)",
    404: "no such thing, or not visible to the caller (code not_found)",
    409: "the request conflicts with the current state",
    422: "invalid input (code invalid_input naming the field) or a refused reading (a VEE reason code)",
    429: "too many attempts (code throttled); see Retry-After",
    502: "the meter could not be polled",
    503: "the store or the collector is not available",
}


ERROR_BODY_REF = "#/components/schemas/ErrorBody"
"""Where the OpenAPI document keeps `ErrorBody` (put there by `amr.api.openapi.install_openapi`)."""


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of error answers, for a route's ``responses=``.

    The answers refer to `ErrorBody` by ``$ref`` rather than as a ``model``: FastAPI would build a validating field of
    the same model for each of the ~190 error answers of the API at start-up, to document the one schema.
    """
    return {
        code: {
            "description": _DESCRIPTIONS.get(code, "error"),
            "content": {"application/json": {"schema": {"$ref": ERROR_BODY_REF}}},
        }
        for code in codes
    }


CONTROL_FIX = (
    "contains a control character (such as NUL); remove it",
    "содержит управляющий символ (например, NUL); удалите его",
)

_FIXES: dict[str, tuple[str, str]] = {
    "control_character": CONTROL_FIX,
    "whole_number": (
        "must be a whole number written with ASCII digits 0-9 (and an optional sign), e.g. 2",
        "должно быть целым числом из цифр 0-9 (со знаком или без), например 2",
    ),
    "missing": ("is required; add it", "обязательное поле; добавьте его"),
    "extra_forbidden": ("is not a known field; remove it or check its spelling", "неизвестное поле; удалите его"),
    "json_invalid": ("the body is not valid JSON; send a JSON object", "тело запроса — не JSON; отправьте объект JSON"),
    "string_type": ('must be a string, e.g. "1234.5"', 'должно быть строкой, например "1234.5"'),
    "int_parsing": ("must be a whole number", "должно быть целым числом"),
    "int_type": ("must be a whole number", "должно быть целым числом"),
    "int_from_float": ("must be a whole number", "должно быть целым числом"),
    "bool_parsing": ("must be true or false", "должно быть true или false"),
    "bool_type": ("must be true or false", "должно быть true или false"),
    "dict_type": ("must be a JSON object", "должно быть объектом JSON"),
    "model_type": ("must be a JSON object", "должно быть объектом JSON"),
    "model_attributes_type": ("must be a JSON object", "должно быть объектом JSON"),
    "list_type": ("must be a list", "должно быть списком"),
}


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _fix(error: dict[str, Any]) -> tuple[str, str]:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in _FIXES:
        return _FIXES[kind]
    if kind in ("enum", "literal_error"):
        expected = ctx.get("expected", "")
        return f"must be one of {expected}", f"допустимые значения: {expected}"
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        return f"is too short; give at least {least}", f"слишком коротко; нужно не меньше {least}"
    if kind in ("string_too_long", "too_long"):
        most = ctx.get("max_length", "")
        return f"is too long; give at most {most}", f"слишком длинно; допускается не больше {most}"
    for name, en, ru in (
        ("greater_than_equal", "must be at least {}", "должно быть не меньше {}"),
        ("greater_than", "must be greater than {}", "должно быть больше {}"),
        ("less_than_equal", "must be at most {}", "должно быть не больше {}"),
        ("less_than", "must be less than {}", "должно быть меньше {}"),
    ):
        if kind == name:
            limit = next(iter(ctx.values()), "")
            return en.format(limit), ru.format(limit)
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return message, f"неверное значение ({message})"


def validation_error(exc: RequestValidationError, lang: Lang) -> JSONResponse:
    """422 ``invalid_input`` naming every wrong field and its fix."""
    problems = []
    for error in exc.errors():
        where = _where(tuple(error.get("loc", ())))
        en, ru = _fix(error)
        problems.append((where, en, ru))
    if not problems:
        problems.append(("body", "is invalid", "неверный запрос"))
    first = problems[0]
    kinds = [str(e.get("type", "")) for e in exc.errors()]
    body = ErrorBody(
        code="malformed" if kinds and kinds[0] == "whole_number" else "invalid_input",
        message=f"{first[0]}: {first[2] if lang == 'ru' else first[1]}",
        field=first[0],
        errors=[FieldProblem(field=w, message=ru if lang == "ru" else en) for w, en, ru in problems],
    )
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=422)


_HTTP_CODES = {
    401: ("unauthorized", "log in first", "требуется вход"),
    403: ("forbidden", "not allowed", "нет доступа"),
    404: ("not_found", "no such path", "нет такого адреса"),
    405: ("method_not_allowed", "this method is not allowed here", "этот метод здесь не поддерживается"),
}


def install_error_handlers(app: FastAPI) -> None:
    """Register the error boundary on `app`."""

    def lang_of(request: Request) -> Lang:
        return pick_language(request.headers.get("accept-language"))

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response(lang_of(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc, lang_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (e.g. not UTF-8)
            unreadable = ApiError(
                422,
                "invalid_input",
                "body: could not be read; send a UTF-8 JSON object",
                "body: не удалось прочитать; отправьте объект JSON в UTF-8",
                field="body",
            )
            return unreadable.response(lang_of(request))
        code, en, ru = _HTTP_CODES.get(exc.status_code, (f"http_{exc.status_code}", str(exc.detail), str(exc.detail)))
        error = ApiError(exc.status_code, code, en, ru, headers=dict(exc.headers or {}))
        return error.response(lang_of(request))

    @app.exception_handler(AmrError)
    async def _amr(request: Request, exc: AmrError) -> JSONResponse:
        return translate(exc).response(lang_of(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return ApiError(500, "internal_error", "internal error", "внутренняя ошибка").response(lang_of(request))


def translate(exc: AmrError) -> ApiError:
    """The API error for one of the project's exceptions."""
    text = str(exc)
    if isinstance(exc, NotFound):
        return not_found(text or "not found")
    if isinstance(exc, InputError):
        return ApiError(422, "invalid_input", text, f"неверные данные: {text}")
    if isinstance(exc, StoreUnavailable):
        return ApiError(
            503,
            "store_unavailable",
            "the database is unavailable; try again later",
            "база данных недоступна; повторите позже",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, StoreConflict):
        return ApiError(
            409, "conflict", "a concurrent change interfered; try again", "одновременное изменение помешало; повторите"
        )
    log.error("unexpected error: %s", exc, exc_info=exc)
    if isinstance(exc, StoreError):
        return ApiError(500, "store_error", "the database refused the operation", "база данных отклонила операцию")
    return ApiError(500, "internal_error", "internal error", "внутренняя ошибка")
