"""Bodies of the clock and event routes (`amr.api.routes.meter_ops`).

Times are ISO 8601: ``timestamp`` in UTC, ``local_time`` in the site's zone; a drift is the
meter's clock minus the head-end's, in seconds (positive: the meter runs ahead).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Severity = Literal["info", "warning", "critical"]
ClockState = Literal[
    "ok", "drifting", "corrected", "set", "refused", "uncorrectable", "unread", "unknown", "requested"
]


class EventItem(BaseModel):
    """One meter event, from the meter's journal or from the head-end's own actions."""

    id: int
    timestamp: datetime
    local_time: str
    code: str = Field(description="stable code, e.g. power.off, tamper.cover_opened, clock.corrected")
    category: str
    severity: Severity
    text: str = Field(description="in the language of Accept-Language")
    text_ru: str
    text_en: str
    detail: str
    source: Literal["meter", "head-end"] | str
    raw: dict[str, Any] = Field(description="the record as the meter sent it")


class EventPage(BaseModel):
    """A meter's events, newest first."""

    meter: str
    items: list[EventItem]
    next_offset: int | None = None


class ClockItem(BaseModel):
    """The last clock check of one meter."""

    serial: str
    name: str
    object: str
    state: ClockState
    drift_s: float | None = None
    meter_time: datetime | None = None
    checked_at: datetime | None = None
    message: str = ""
    corrected_at: datetime | None = None
    correction_s: float | None = None
    threshold_s: float


class ClockList(BaseModel):
    """Clock checks of the meters in the caller's scope."""

    total: int
    items: list[ClockItem]


class ClockResult(BaseModel):
    """The outcome of a clock check asked for by a dispatcher."""

    meter: str
    state: ClockState
    drift_s: float | None = None
    meter_time: datetime | None = None
    message: str = ""
    events: list[str] = []
