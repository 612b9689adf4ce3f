"""Request and response bodies of the HTTP API.

Energy values are decimal strings in kWh (active) or kvarh (reactive) at the primary side,
with three decimals: exact, never binary floats. Times are ISO 8601: ``timestamp`` in UTC
and ``local_time`` in the site's zone.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from amr.core.domain import Channel, Source

Kwh = Annotated[str, Field(description="kWh or kvarh with up to three decimals", examples=["1234.567"])]

# --- the forms of text the API takes, as the OpenAPI document states them -------------------
# The parsers (`amr.core.domain.wh_from_kwh`, `amr.api.present.parse_day`/`parse_moment`/`parse_month`)
# enforce them with messages naming the field; the patterns below only say them to clients.

_YEAR = "(?:19[0-9]{2}|[2-8][0-9]{3})"
_DAY = f"{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
DATE_RANGE = "1900-01-01 to 8999-12-31"
DAY_PATTERN = f"^{_DAY}$"
"""A calendar day YYYY-MM-DD within the range the API takes (``format: date`` says it is a real day)."""
MOMENT_PATTERN = f"^{_DAY}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?:[.][0-9]{{1,9}})?(?:Z|[+-][0-9]{{2}}:[0-9]{{2}})$"
"""An RFC 3339 date-time whose local date lies within the range the API takes."""
MONTH_PATTERN = f"^{_YEAR}-(?:0[1-9]|1[0-2])$"
KWH_PATTERN = "^[+]?0*(?:[0-9]{1,15}(?:[.][0-9]{0,3})?|[.][0-9]{1,3})$"
"""A non-negative energy value as `amr.core.domain.wh_from_kwh` reads it: ASCII digits, one optional
decimal point, at most three decimals, below 10^15 kWh."""
ZONE_PATTERN = "^(?:[0-4]|total)$"
TOKEN_PATTERN = "^[A-Za-z0-9_-]+$"
"""An opaque id or cursor of this API (unpadded URL-safe base64)."""

DAY_SCHEMA: dict[str, object] = {
    "type": "string",
    "format": "date",
    "pattern": DAY_PATTERN,
    "description": f"YYYY-MM-DD from {DATE_RANGE}",
}
MOMENT_SCHEMA: dict[str, object] = {
    "type": "string",
    "format": "date-time",
    "pattern": MOMENT_PATTERN,
    "description": f"an ISO datetime with its offset, local date from {DATE_RANGE}",
}
DAY_OR_MOMENT = WithJsonSchema({"anyOf": [DAY_SCHEMA, MOMENT_SCHEMA]})
"""A date (the site's zone) or an ISO datetime. (Also taken, though not promised here: a datetime
without seconds or without offset, meaning the site's zone.)"""
DayText = Annotated[str, WithJsonSchema(DAY_SCHEMA)]
MonthText = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": MONTH_PATTERN, "description": "YYYY-MM, 1900-01 to 8999-12"}),
]
TokenText = Annotated[str, WithJsonSchema({"type": "string", "pattern": TOKEN_PATTERN, "maxLength": 200})]


def _number_text(value: object) -> object:
    """Let a JSON number through as its decimal text (strings are kept exactly as sent)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    return value


ValueText = Annotated[
    str,
    BeforeValidator(_number_text),
    Field(max_length=40),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": KWH_PATTERN,
            "maxLength": 40,
            "description": 'kWh as a decimal string, e.g. "1234.5": ASCII digits 0-9, one optional point, at most '
            "three decimals, below 10^15 (a JSON number is taken too)",
            "examples": ["1234.5"],
        }
    ),
]
ZoneKey = Annotated[str, WithJsonSchema({"type": "string", "pattern": ZONE_PATTERN})]
"""A tariff zone of a form: 0 (or total) the total, 1..4 the zones."""
ManualSource = Literal["web", "mobile", "operator"]
SOURCE_FILTERS: tuple[str, ...] = ("askue", *(s.value for s in Source))  # askue: every askue:* source


def _known_source(value: str) -> str:
    if value not in SOURCE_FILTERS:
        raise ValueError(f"unknown source {value!r}; use one of {', '.join(SOURCE_FILTERS)}")
    return value


SourceFilter = Annotated[
    str, AfterValidator(_known_source), WithJsonSchema({"type": "string", "enum": list(SOURCE_FILTERS)})
]
HealthStatus = Literal["online", "degraded", "offline", "unknown"]


CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Characters no field of the API takes (NUL among them: PostgreSQL refuses it in text);
tabs and line breaks are allowed."""


PLAIN_TEXT_PATTERN = f"^[^{CONTROL_CHARACTERS.pattern[1:-1]}]*$"
"""`CONTROL_CHARACTERS` as the OpenAPI document states it: text without them."""


def has_control(text: str) -> bool:
    """True when `text` holds a character of `CONTROL_CHARACTERS`."""
    return CONTROL_CHARACTERS.search(text) is not None


def _no_control(value: object) -> object:
    texts = [value] if isinstance(value, str) else []
    if isinstance(value, dict):
        texts = [t for pair in value.items() for t in pair if isinstance(t, str)]
    if any(has_control(t) for t in texts):
        raise PydanticCustomError("control_character", "contains a control character")
    return value


def _whole_text(value: object) -> object:
    """Refuse whole numbers written otherwise than in ASCII digits (``1_000``, ``1.0``, ``١``)."""
    if isinstance(value, str) and not WHOLE.fullmatch(value):
        raise PydanticCustomError("whole_number", "is not a whole number written in ASCII digits")
    return value


WHOLE = re.compile(r"[+-]?[0-9]{1,18}")
WholeText = BeforeValidator(_whole_text)
"""Metadata of a whole-number parameter: as text (query and path) only ASCII digits with an optional
sign. Put it after the parameter's bounds, ``Annotated[int, Query(ge=1), WholeText]``: placed
before them, the bounds reach the OpenAPI document as ``ge``/``le`` instead of ``minimum``/``maximum``."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_control_characters(cls, value: object) -> object:
        return _no_control(value)


# --- errors ------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    """One wrong field of a request: where it is and how to fix it."""

    field: str
    message: str


class ReasonItem(BaseModel):
    """A validation reason code with its message."""

    code: str = Field(description="stable code, e.g. lower_than_previous")
    message: str


class PreviousReading(BaseModel):
    """The last accepted reading before the one judged (same meter, tariff, channel)."""

    value: Kwh
    timestamp: datetime
    local_time: str
    source: str


class TariffVerdict(BaseModel):
    """The verdict on one tariff zone's value."""

    tariff: int = Field(description="0 the total, 1..4 the zones")
    value: Kwh
    status: Literal["accepted", "duplicate", "rejected", "pending", "not_stored"] = Field(
        description="not_stored: valid, but another zone of the same submission was refused, so nothing was stored"
    )
    previous: PreviousReading | None = None
    consumption: Kwh | None = Field(None, description="since the previous reading")
    flags: list[str] = []
    reasons: list[ReasonItem] = []
    message: str = ""
    detail: str = Field("", description="the validation pipeline's own message (English)")
    id: str | None = Field(None, description="reading id once stored")
    pending_id: int | None = Field(None, description="id in the moderation queue")


class ErrorBody(BaseModel):
    """Every error answer: a stable machine-readable code and a message in Russian or English."""

    code: str = Field(
        description="e.g. not_found, unauthorized, forbidden, throttled, invalid_input, lower_than_previous"
    )
    message: str
    field: str | None = Field(None, description="the request field that is wrong")
    errors: list[FieldProblem] | None = None
    retry_after: int | None = Field(None, description="seconds to wait (also the Retry-After header)")
    readings: list[TariffVerdict] | None = Field(None, description="per tariff zone, when readings were refused")


# --- auth --------------------------------------------------------------------------------


class LoginRequest(_Body):
    """Login and password."""

    login: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class TokenResponse(BaseModel):
    """A bearer token: send it as ``Authorization: Bearer <access_token>``."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    expires_in: int = Field(description="seconds")


class Me(BaseModel):
    """The caller and what it is linked to."""

    login: str
    name: str
    role: str
    accounts: list[str]
    meters: list[str]
    objects: list[str]


# --- meters and readings -----------------------------------------------------------------


class AskueMeter(BaseModel):
    """One row of the АСКУЭ table: the latest accepted reading of tariff 0 of a meter."""

    object: str
    meter: str = Field(description="meter name")
    serial: str
    a_plus: Kwh | None = None
    a_minus: Kwh | None = None
    r_plus: Kwh | None = None
    r_minus: Kwh | None = None
    obtained_at: datetime | None = None
    local_time: str | None = None


class LatestReading(BaseModel):
    """The latest accepted reading of one tariff zone."""

    tariff: int
    timestamp: datetime
    local_time: str
    a_plus: Kwh | None = None
    a_minus: Kwh | None = None
    r_plus: Kwh | None = None
    r_minus: Kwh | None = None
    source: str
    id: str


class AccountMeter(BaseModel):
    """A meter of an account with its latest reading per tariff zone."""

    serial: str
    name: str
    object: str
    point: str
    model: str
    tariffs: int
    latest: list[LatestReading]


class AccountMeters(BaseModel):
    """The meters of one personal account."""

    account: str
    public_submission: bool
    meters: list[AccountMeter]


class AccountSettings(BaseModel):
    """Settings of an account chosen by its holder."""

    account: str
    public_submission: bool = Field(description="readings may be submitted without login by account number")


class AccountSettingsUpdate(_Body):
    """Change an account's settings."""

    public_submission: bool


class ChannelValues(BaseModel):
    """A value per channel (kWh for A+/A-, kvarh for R+/R-); absent channels are null."""

    a_plus: Kwh | None = None
    a_minus: Kwh | None = None
    r_plus: Kwh | None = None
    r_minus: Kwh | None = None


class ReadingItem(BaseModel):
    """An accepted reading with the consumption since the previous one of its series."""

    id: str = Field(description="opaque, stable: derived from meter, tariff and time")
    meter: str
    timestamp: datetime
    local_time: str
    billing_month: str = Field(description="YYYY-MM in the site's zone")
    tariff: int
    values: ChannelValues
    consumption: ChannelValues
    source: str
    flags: list[str]
    received_at: datetime


class ReadingPage(BaseModel):
    """A page of history, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    meter: str
    items: list[ReadingItem]
    next_cursor: str | None = None


class Gap(BaseModel):
    """A span of a bucket not covered by readings."""

    start: datetime
    end: datetime


class ConsumptionBucket(BaseModel):
    """Consumption in [start, end); null when no interval between readings lies inside."""

    start: datetime
    end: datetime
    local_start: str
    value: Kwh | None = None
    complete: bool
    gaps: list[Gap]
    basis: Literal["registers", "intervals"] = "registers"
    intervals: dict[str, int] | None = Field(
        None,
        description="the meter's intervals inside the bucket by status (measured, incomplete, estimated, missing); "
        "null when it has none in the period or for a tariff zone",
    )


class ConsumptionSeries(BaseModel):
    """Consumption of one channel and tariff by bucket in the site's zone; gaps are reported, never filled."""

    meter: str
    channel: Channel
    unit: str
    tariff: int
    step: str
    timezone: str
    total: Kwh | None = None
    complete: bool
    buckets: list[ConsumptionBucket]


class ReadingInput(_Body):
    """Values of one meter per tariff zone, at one time (the cabinet's form)."""

    meter: str = Field(min_length=1, max_length=64, description="meter serial number")
    date: Annotated[str, DAY_OR_MOMENT] | None = Field(
        None,
        max_length=40,
        description="YYYY-MM-DD (site's zone; today means now, another day its noon) or an ISO datetime; default now",
        examples=["2026-01-20"],
    )
    values: dict[ZoneKey, ValueText] = Field(
        min_length=1,
        max_length=5,
        description='value per tariff zone: {"1": "1234.5", "2": "567.8"}, or the total as {"0": ...} '
        'or {"total": ...}; a zone the meter does not have is refused as unknown_tariff_zone',
        json_schema_extra={"additionalProperties": False},
    )
    channel: Channel = Field(Channel.A_PLUS, description="the channel the values are for")


class SubmitInput(ReadingInput):
    """A reading to store: the cabinet's «Подтвердить»."""

    source: ManualSource = Field("web", description="web (cabinet), mobile (app) or operator (taken by staff)")


class PublicInput(ReadingInput):
    """A reading submitted without login, by account number."""

    account: str = Field(min_length=1, max_length=64, description="personal account number (лицевой счёт)")


class SubmitResult(BaseModel):
    """The verdict per tariff zone; ``status`` is accepted, duplicate, pending or rejected overall."""

    meter: str
    timestamp: datetime
    local_time: str
    channel: Channel
    unit: str
    status: Literal["accepted", "duplicate", "pending", "rejected"]
    readings: list[TariffVerdict]


class DeletedReading(BaseModel):
    """A deleted reading."""

    deleted: ReadingItem


# --- moderation and dispatch ---------------------------------------------------------------


class PendingItem(BaseModel):
    """A manual reading waiting for (or past) moderation."""

    id: int
    meter: str
    timestamp: datetime
    local_time: str
    tariff: int
    values: ChannelValues
    source: str
    submitted_by: str
    submitted_at: datetime
    status: Literal["pending", "processing", "accepted", "rejected", "refused"]
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


class ResolveInput(_Body):
    """Why an operator decided so (kept in the audit trail)."""

    reason: str = Field(min_length=1, max_length=1000)


class AcceptInput(_Body):
    """An optional note for accepting a pending reading."""

    reason: str = Field("", max_length=1000)


class ModerationResult(BaseModel):
    """A moderated reading and, when accepted, the pipeline's verdict."""

    pending: PendingItem
    verdict: TariffVerdict | None = None


class DispatchMeter(BaseModel):
    """A meter as a dispatcher sees it."""

    serial: str
    name: str
    object: str
    point: str
    model: str
    status: HealthStatus
    last_poll: datetime | None = None
    last_error: str | None = None
    last_reading: datetime | None = None
    readings_expected: int = Field(description="30-minute slots in the period so far (while in service)")
    readings_received: int = Field(description="accepted readings of tariff 0 in the period")
    completeness: float = Field(ge=0, le=1)
    intervals_expected: int | None = Field(
        None, description="intervals its profile period makes in the period so far; null without interval data"
    )
    intervals_received: int | None = Field(None, description="intervals stored (of its most complete channel)")
    interval_completeness: float | None = Field(None, ge=0, le=1)


class DispatchMeters(BaseModel):
    """Meters with status and completeness for a day or a month."""

    period: Literal["day", "month"]
    start: datetime
    end: datetime
    total: int
    items: list[DispatchMeter]


class RejectedItem(BaseModel):
    """A refused reading with its reasons, kept until a dispatcher acts."""

    id: int
    meter: str
    timestamp: datetime | None = None
    tariff: int | None = None
    values: ChannelValues
    source: str
    reasons: list[ReasonItem]
    message: str
    status: str
    received_at: datetime
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


class OverrideResult(BaseModel):
    """A refused reading accepted by a dispatcher (flagged overridden)."""

    rejected_id: int
    reading: ReadingItem


class PollResult(BaseModel):
    """What the collector answered to «poll now»."""

    serial: str
    result: dict[str, object]


class Health(BaseModel):
    """Service health."""

    status: Literal["ok"]
    database: Literal["ok"]
    collector: Literal["running", "absent"]
