"""Bodies of the interval routes (`amr.api.routes.intervals`) and the interval counts of consumption."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from amr.api.schemas import MOMENT_SCHEMA, Kwh, ValueText, _Body
from amr.core.domain import Channel

IntervalStatusText = Literal["measured", "incomplete", "estimated", "missing"]


class IntervalItem(BaseModel):
    """One expected interval of one channel: its energy and how it is known, or missing."""

    channel: Channel
    start: datetime
    end: datetime
    local_start: str
    minutes: int
    value: Kwh | None = None
    status: IntervalStatusText
    source: Literal["profile", "derived", "estimated", "manual"] | None = None
    method: str | None = Field(None, description="how an estimated value was made: shape or linear")
    flags: list[str] = Field(default_factory=list, description="the meter's status bits: power_failure, ...")


class IntervalCounts(BaseModel):
    """Expected intervals by how they are known."""

    measured: int
    incomplete: int
    estimated: int
    missing: int


class SumMismatchItem(BaseModel):
    """Intervals between two register readings that do not add up to the register delta (code sum_mismatch)."""

    reason: Literal["sum_mismatch"] = "sum_mismatch"
    channel: Channel
    start: datetime
    end: datetime
    registers: Kwh
    intervals: Kwh
    tolerance: Kwh


class IntervalProfile(BaseModel):
    """A meter's interval data (load profile) over a period, with what is missing and the sum check."""

    meter: str
    timezone: str
    start: datetime
    end: datetime
    counts: IntervalCounts
    intervals: list[IntervalItem]
    sum_check: list[SumMismatchItem]


class SubstituteInput(_Body):
    """A dispatcher's value for one interval, with why (kept in the audit trail)."""

    channel: Channel = Channel.A_PLUS
    start: Annotated[str, WithJsonSchema(MOMENT_SCHEMA)] = Field(max_length=40, description="the interval's start")
    minutes: Literal[15, 30, 60] = 30
    value: ValueText = Field(description="kWh (kvarh) at the primary side")
    reason: str = Field(min_length=1, max_length=1000)
