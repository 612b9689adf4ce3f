"""Bodies of the relay and power-quality routes (`amr.api.routes.operations`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from amr.api.schemas import _Body


class RelayInput(_Body):
    """A relay command: what to do, why (kept in the audit trail) and until when it may wait."""

    action: Literal["disconnect", "reconnect", "read"]
    reason: str = Field(min_length=1, max_length=1000)
    deadline: AwareDatetime | None = Field(
        None, description="until when the command may wait for the meter (default: now + [relay] deadline)"
    )


class RelayCommandOut(BaseModel):
    """A relay command and its outcome (``state``: the switch as read back from the meter)."""

    id: int
    serial: str
    action: str
    reason: str
    requested_by: str
    requested_at: datetime
    deadline: datetime
    status: Literal["queued", "running", "done", "failed", "expired"]
    attempts: int
    finished_at: datetime | None
    state: str | None
    supplied: bool | None
    acted: bool | None = Field(description="whether this command moved the switch (false: it was there already)")
    error: str | None
    error_code: str | None


class RelayStatus(BaseModel):
    """A meter's relay: the last state read back (if any) and its newest commands."""

    serial: str
    state: str | None
    supplied: bool | None
    read_at: datetime | None
    commands: list[RelayCommandOut]


class QualityEventOut(BaseModel):
    """A quantity outside its limit."""

    ts: datetime
    quantity: str
    value: float
    threshold: float
    kind: Literal["above", "below"]


class QualitySeries(BaseModel):
    """A meter's instantaneous values in a period: one row per sample, a value (or null) per quantity."""

    meter: str
    units: dict[str, str]
    limits: dict[str, dict[str, float | None]] = Field(
        description="the configured limits by quantity or group ([quality] limits): {min, max}")
    samples: list[dict[str, float | datetime | None]]
    events: list[QualityEventOut]
