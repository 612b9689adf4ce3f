"""``/api/v1/registry``: the meter registry for admins — meters, buses, objects and metering points
listed, created, edited and removed; a meter replaced on its point at a given time; a new
transformer ratio from a date.

Bodies are the TOML's entries as JSON (``{"serial": "...", "bus": "...", "address": 5, "profile": ...}``),
validated by the same rules as the configuration (`amr.registry.edits`); numbers that must stay exact
(ratios, powers) come back as decimal strings; secrets come back as ``"********"``. Every change is
audited (actor: the admin's login) and reaches the collector and every API worker within seconds.
Writes need ``[registry] source = "database"`` (else 409 ``registry_not_in_use``: the file rules).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from amr.api.access import Principal
from amr.api.context import ApiContext
from amr.api.deps import Ctx, refuse_control_characters, require_roles
from amr.api.errors import ApiError, invalid, responses
from amr.api.present import parse_moment
from amr.api.schemas import DAY_OR_MOMENT, PLAIN_TEXT_PATTERN, _number_text, has_control
from amr.errors import ConfigError, InputError
from amr.registry import edits
from amr.registry.entries import Entry
from amr.registry.pages import page_of_buses, page_of_objects, page_of_points

router = APIRouter(prefix="/api/v1/registry", tags=["registry"], dependencies=[Depends(refuse_control_characters)])
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Serial = Annotated[str, Path(min_length=1, max_length=64, description="meter serial number")]
BusName = Annotated[str, Path(min_length=1, max_length=100, description="bus name")]
Reason = Annotated[str, Query(max_length=1000, description="why (kept in the audit trail)")]
EntryBody = Annotated[dict[str, Any], Body(description="the entry as in the TOML, as a JSON object")]


RATIO_PATTERN = r"^(?:0*[1-9][0-9]{0,8}(?:[.][0-9]{1,6})?|0?[.][0-9]{0,5}[1-9])$"
"""A transformer ratio: positive, at most 9 digits before the point and 6 after (as the store keeps it)."""
_RATIO_SCHEMA = {"type": "string", "pattern": RATIO_PATTERN, "maxLength": 20, "examples": ["40"],
                 "description": "a positive ratio as a decimal string (a JSON number is taken too)"}
Ratio = Annotated[str, BeforeValidator(_number_text), Field(max_length=20), WithJsonSchema(_RATIO_SCHEMA)]
LeftOutRatio = Annotated[Ratio | None, WithJsonSchema(_RATIO_SCHEMA)]
"""A ratio that may be left out (None), never given as null."""
Moment = Annotated[str, DAY_OR_MOMENT, Field(max_length=40)]


class RatioInput(BaseModel):
    """A new CT ratio, VT ratio or both in force from `since` (a date in the site's zone or an ISO time);
    the one left out keeps the value in force at `since`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": ["ct_ratio"]}, {"required": ["vt_ratio"]}]},
    )
    since: Moment
    ct_ratio: LeftOutRatio = Field(None, description="the new CT ratio; left out: the one in force at `since` stays")
    vt_ratio: LeftOutRatio = Field(None, description="the new VT ratio; left out: the one in force at `since` stays")
    reason: str = Field("", max_length=1000)

    @field_validator("ct_ratio", "vt_ratio", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("give a ratio, or leave the key out to keep the one in force")
        return value


class ReplaceInput(BaseModel):
    """The meter that takes over a metering point at `at` (a date in the site's zone or an ISO time)."""

    model_config = ConfigDict(extra="forbid")
    at: Moment
    meter: dict[str, Any]
    reason: str = Field("", max_length=1000)


def _ratio(text: str, field: str) -> Decimal:
    if not re.fullmatch(RATIO_PATTERN, text):
        raise invalid(field, f"{text!r} is not a ratio; write a positive number such as 40 or 0.5",
                      f"{text!r} — не коэффициент; пишите положительное число, например 40 или 0.5")
    return Decimal(text)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _writable(ctx: ApiContext) -> None:
    if ctx.app.config.registry.source != "database":
        raise ApiError(
            409, "registry_not_in_use",
            'meters and buses come from the configuration file; set [registry] source = "database" to edit them here',
            'счётчики и шины берутся из файла конфигурации; задайте [registry] source = "database", '
            "чтобы изменять их здесь",
        )


def _checked(entry: dict[str, Any], where: str = "body") -> dict[str, Any]:
    def walk(value: Any) -> None:
        if isinstance(value, str) and has_control(value):
            raise ApiError(422, "invalid_entry", f"{where}: a text holds a control character; remove it",
                           f"{where}: текст содержит управляющий символ; удалите его", field=where)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        if isinstance(value, list):
            for v in value:
                walk(v)

    walk(entry)
    return entry


def _refused(exc: Exception) -> ApiError:
    text = str(exc)
    if isinstance(exc, edits.Conflict):
        return ApiError(409, "registry_conflict", text, exc.russian)
    return ApiError(422, "invalid_entry", text, f"запись не принята: {text}")


@router.get("/meters", responses=responses(401, 403, 422))
def list_meters(
    principal: Admin,
    ctx: Ctx,
    search: Annotated[str | None, Query(max_length=100, description="start of the serial, or part of name or point")]
    = None,
    after: Annotated[str | None, Query(max_length=64, description="the `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Meters of the registry by serial, a page at a time (keyset paging: `next` is the serial to
    continue after; null on the last page)."""
    meters, following = edits.page_of_meters(ctx.store, search, after, limit)
    return {"meters": [_plain(m) for m in meters], "next": following}


@router.get("/meters/{serial}", responses=responses(401, 403, 404))
def get_meter(serial: Serial, principal: Admin, ctx: Ctx) -> dict[str, Any]:
    """One meter's entry."""
    return dict(_plain(edits.one_meter(ctx.store, serial)))


@router.put("/meters/{serial}", responses=responses(401, 403, 409, 422))
def put_meter(serial: Serial, body: EntryBody, principal: Admin, ctx: Ctx, reason: Reason = "") -> JSONResponse:
    """Create (201) or replace (200) a meter: the whole entry, validated with its bus."""
    _writable(ctx)
    entry = _checked({**body, "serial": body.get("serial", serial)})
    if entry["serial"] != serial:
        raise ApiError(422, "invalid_entry", "serial: differs from the path's; a meter keeps its serial",
                       "serial: не совпадает с адресом; серийный номер счётчика не меняется", field="serial")
    try:
        edited, new = edits.put_meter(ctx.store, ctx.app.config, entry, principal.login, reason)
    except (ConfigError, edits.Conflict) as exc:
        raise _refused(exc) from None
    body = {"version": edited.version, "meter": _plain(edited.entries[0])}
    return JSONResponse(body, status_code=201 if new else 200)


@router.delete("/meters/{serial}", responses=responses(401, 403, 404, 409))
def remove_meter(serial: Serial, principal: Admin, ctx: Ctx, reason: Reason = "") -> dict[str, Any]:
    """Take a meter out of the registry (its readings stay; no longer collected)."""
    _writable(ctx)
    return {"version": edits.remove_meter(ctx.store, serial, principal.login, reason).version}


@router.post("/meters/{serial}/ratios", responses=responses(401, 403, 404, 409, 422))
def new_ratio(serial: Serial, body: RatioInput, principal: Admin, ctx: Ctx) -> dict[str, Any]:
    """A new CT ratio, VT ratio or both in force from a date (later than the meter's last one); the one
    left out keeps its value. Readings before keep the old ratio, energy across the change is computed
    with the ratio of each interval."""
    _writable(ctx)
    if body.ct_ratio is None and body.vt_ratio is None:
        raise invalid("ct_ratio", "give ct_ratio, vt_ratio or both (the one left out stays as it is)",
                      "укажите ct_ratio, vt_ratio или оба (неуказанный остаётся прежним)")
    ct = None if body.ct_ratio is None else _ratio(body.ct_ratio, "ct_ratio")
    vt = None if body.vt_ratio is None else _ratio(body.vt_ratio, "vt_ratio")
    try:
        edited = edits.new_ratio(ctx.store, ctx.app.config, serial, parse_moment(body.since, "since", ctx.tz),
                                 ct, vt, principal.login, body.reason)
    except (ConfigError, edits.Conflict) as exc:
        raise _refused(exc) from None
    return {"version": edited.version, "meter": _plain(edited.entries[0])}


@router.post("/points/{point}/replace", responses=responses(401, 403, 404, 409, 422))
def replace_meter(
    point: Annotated[str, Path(min_length=1, max_length=100)], body: ReplaceInput, principal: Admin, ctx: Ctx
) -> dict[str, Any]:
    """Replace the meter in service on a metering point at `at`: the old one is removed then (its series
    ends, it is no longer collected), the new one installed then (its own series starts)."""
    _writable(ctx)
    try:
        edited = edits.replace_on_point(ctx.store, ctx.app.config, point, parse_moment(body.at, "at", ctx.tz),
                                        _checked(body.meter, "meter"), principal.login, body.reason)
    except (ConfigError, edits.Conflict) as exc:
        raise _refused(exc) from None
    return {"version": edited.version, "removed": _plain(edited.entries[0]), "installed": _plain(edited.entries[1])}


Search = Annotated[str | None, Query(max_length=100, description="part of the name (any case)")]
After = Annotated[str | None, Query(max_length=200, description="the `next` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many on the page")]


@router.get("/buses", responses=responses(401, 403, 422))
def list_buses(principal: Admin, ctx: Ctx, search: Search = None, after: After = None, limit: Limit = 100
               ) -> dict[str, Any]:
    """The registry's buses by name, a page at a time (keyset paging: `next` is the name to continue after; null on
    the last page), those whose name or line address holds `search`; secrets come back as ``"********"``."""
    buses, following = page_of_buses(ctx.store, search, after, limit, edits.bus_entries)
    return {"buses": [_plain(b) for b in buses], "next": following}


@router.put("/buses/{name}", responses=responses(401, 403, 409, 422))
def put_bus(name: BusName, body: EntryBody, principal: Admin, ctx: Ctx, reason: Reason = "") -> JSONResponse:
    """Create (201) or replace (200) a bus: its whole entry, validated with every meter on it."""
    _writable(ctx)
    entry: Entry = _checked({**body, "name": body.get("name", name)})
    if entry["name"] != name:
        raise ApiError(422, "invalid_entry", "name: differs from the path's; a bus keeps its name",
                       "name: не совпадает с адресом; имя шины не меняется", field="name")
    try:
        edited, new = edits.put_bus(ctx.store, ctx.app.config, entry, principal.login, reason)
    except (ConfigError, edits.Conflict) as exc:
        raise _refused(exc) from None
    return JSONResponse({"version": edited.version, "bus": _plain(edited.entries[0])}, status_code=201 if new else 200)


@router.delete("/buses/{name}", responses=responses(401, 403, 404, 409))
def remove_bus(name: BusName, principal: Admin, ctx: Ctx, reason: Reason = "") -> dict[str, Any]:
    """Remove a bus no meter is on."""
    _writable(ctx)
    try:
        return {"version": edits.remove_bus(ctx.store, name, principal.login, reason).version}
    except edits.Conflict as exc:
        raise _refused(exc) from None


class ObjectInput(BaseModel):
    """An object's name (a new one renames it)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=PLAIN_TEXT_PATTERN)


class PointInput(BaseModel):
    """The object a metering point belongs to."""

    model_config = ConfigDict(extra="forbid")
    object: str = Field(min_length=1, max_length=200, pattern=PLAIN_TEXT_PATTERN)


ObjectName = Annotated[str, Path(min_length=1, max_length=200, description="object name")]
PointCode = Annotated[str, Path(min_length=1, max_length=100, description="metering point code")]


@router.get("/objects", responses=responses(401, 403, 422))
def list_objects(principal: Admin, ctx: Ctx, search: Search = None, after: After = None, limit: Limit = 100
                 ) -> dict[str, Any]:
    """Objects by name, a page at a time (keyset paging: `next` is the name to continue after; null on the last
    page), each with its numbers of metering points and meters."""
    objects, following = page_of_objects(ctx.store, search, after, limit)
    return {"objects": objects, "next": following}


@router.put("/objects/{name}", responses=responses(401, 403, 404, 409, 422))
def put_object(name: ObjectName, body: ObjectInput, principal: Admin, ctx: Ctx, reason: Reason = "") -> JSONResponse:
    """Create an object (201; `name` as in the path) or rename it (200; its points and meters follow)."""
    _writable(ctx)
    try:
        version, new = edits.put_object(ctx.store, name, body.name, principal.login, reason)
    except (InputError, edits.Conflict) as exc:
        raise _refused(exc) from None
    return JSONResponse({"version": version, "name": body.name.strip()}, status_code=201 if new else 200)


@router.delete("/objects/{name}", responses=responses(401, 403, 404, 409))
def remove_object(name: ObjectName, principal: Admin, ctx: Ctx, reason: Reason = "") -> dict[str, Any]:
    """Remove an object without metering points."""
    _writable(ctx)
    try:
        return {"version": edits.remove_object(ctx.store, name, principal.login, reason)}
    except edits.Conflict as exc:
        raise _refused(exc) from None


@router.get("/points", responses=responses(401, 403, 422))
def list_points(
    principal: Admin,
    ctx: Ctx,
    search: Annotated[str | None, Query(max_length=100, description="part of the code or the object's name")] = None,
    object: Annotated[str | None, Query(max_length=200, description="only this object's points")] = None,
    after: After = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Metering points by code, a page at a time (keyset paging: `next` is the code to continue
    after; null on the last page), each with its object, its meter (null when none) and how many
    meters it has had (a point with none can be removed)."""
    points, following = page_of_points(ctx.store, search, after, limit, object)
    return {"points": points, "next": following}


@router.put("/points/{point}", responses=responses(401, 403, 409, 422))
def put_point(point: PointCode, body: PointInput, principal: Admin, ctx: Ctx, reason: Reason = "") -> JSONResponse:
    """Create a metering point in an object (201) or move it there with its meters (200)."""
    _writable(ctx)
    try:
        version, new = edits.put_point(ctx.store, point, body.object, principal.login, reason)
    except (InputError, edits.Conflict) as exc:
        raise _refused(exc) from None
    return JSONResponse({"version": version, "point": point, "object": body.object.strip()},
                        status_code=201 if new else 200)


@router.delete("/points/{point}", responses=responses(401, 403, 404, 409))
def remove_point(point: PointCode, principal: Admin, ctx: Ctx, reason: Reason = "") -> dict[str, Any]:
    """Remove a metering point no meter has ever been on."""
    _writable(ctx)
    try:
        return {"version": edits.remove_point(ctx.store, point, principal.login, reason)}
    except edits.Conflict as exc:
        raise _refused(exc) from None
