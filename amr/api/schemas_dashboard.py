"""Bodies of ``/api/v1/dashboard`` (`amr.api.routes.dashboard`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from amr.api.schemas import ChannelValues, HealthStatus, RejectedItem


class DashProtocol(BaseModel):
    """One registered protocol (bus kind) as `amr.drivers.registry` describes it."""

    kind: str = Field(description="the bus kind of the configuration, e.g. modbus-tcp")
    labels: dict[str, str] = Field(description="language → the protocol's name, e.g. {ru: ..., en: ...}")
    source: str = Field(description="the source of the readings it writes, e.g. askue:modbus")
    push: bool = Field(description="true: devices report by themselves; false: the collector polls")
    serial_line: bool
    url_schemes: list[str]
    capabilities: list[str]


class DashInfo(BaseModel):
    """The site and the caller."""

    site: str
    timezone: str
    now: datetime
    today: str = Field(description="YYYY-MM-DD in the site's zone")
    login: str
    name: str
    role: str
    staff: bool
    collector: Literal["running", "absent"]
    polls: bool = Field(description="recent polls are kept by this process")
    protocols: list[DashProtocol] = Field([], description="every registered protocol, for filters and labels")
    export_80020: bool = Field(description="[export] is configured, so макет 80020 can be built")
    version: str


class StatusCounts(BaseModel):
    """Meters by collector status."""

    online: int = 0
    degraded: int = 0
    offline: int = 0
    unknown: int = 0


class DashSummary(BaseModel):
    """The overview's counters (today is the site's local day)."""

    meters: int
    status: StatusCounts
    readings_today: int = Field(description="reading times stored today, over every meter")
    expected_today: int = Field(description="polls the meters' schedules make today until now, over every meter")
    refused_today: int = Field(description="readings refused today (by the time they were received)")
    refused_open: int = Field(description="refused readings waiting for a dispatcher")
    day_start: datetime
    now: datetime


class DashMeter(BaseModel):
    """One row of the meters table."""

    serial: str
    name: str
    object: str
    point: str
    model: str
    protocol: str | None = Field(None, description="bus kind: modbus-tcp, modbus-rtu, mercury230, iec62056-21, mqtt")
    protocol_name: str | None = None
    bus: str | None = None
    tariffs: int
    status: HealthStatus | None = Field(None, description="null for account holders")
    last_poll: datetime | None = None
    last_error: str | None = None
    last_reading: datetime | None = None
    local_time: str | None = None
    source: str | None = None
    values: ChannelValues
    readings_today: int = 0


class TariffReading(BaseModel):
    """The latest accepted reading of one tariff zone."""

    tariff: int
    timestamp: datetime
    local_time: str
    values: ChannelValues
    source: str
    flags: list[str]


class HealthDetail(BaseModel):
    """The collector's record of a meter."""

    status: HealthStatus
    last_poll: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    polls: int = 0
    failures: int = 0


class MissingItem(BaseModel):
    """A read a poll could not make: the driver's name for it, what it carries, the device's answer."""

    where: str = Field(description="the driver's name of the read, e.g. fc4:344+2 (Modbus function 4, address 344, "
                                   "2 registers), an OBIS code or a tariff zone")
    channels: list[str] = Field(description="the channels and tariff zones it carries, e.g. T1 A+ (empty: not known)")
    answer: str = Field(description="the device's answer or the error, as the driver reported it")


class PollEntry(BaseModel):
    """One poll as the collector reported it (kept in memory by this process); `missing` lists
    the reads that failed in a poll that otherwise answered."""

    polled_at: datetime
    ok: bool
    seconds: float
    attempts: int
    error: str | None = None
    error_kind: str | None = None
    error_code: str | None = None  # the driver's stable code (modbus.busy, mercury.access_denied, timeout...)
    status: str | None = None
    values: dict[str, str | None] | None = None
    errors: dict[str, str] = {}
    missing: list[MissingItem] = []
    accepted: int = 0
    duplicate: int = 0
    rejected: dict[str, int] = {}


class ProblemEntry(BaseModel):
    """Something that went wrong with a meter: a failed poll, a poll that answered in part, or a
    refused reading. `code` is the error kind (ConnectError, ReadTimeout, ProtocolError,
    DeviceError, StoreError) for a poll, ``partial`` for a partial answer, the reason codes for a
    refusal; the dashboard translates it and shows `message` as the technical detail."""

    at: datetime
    kind: Literal["poll", "partial", "refused"]
    code: str
    message: str
    missing: list[MissingItem] = []


class DashMeterDetail(BaseModel):
    """One meter's page."""

    meter: DashMeter
    address: str | None = None
    ct_ratio: str
    vt_ratio: str
    digits: int
    decimals: int
    accounts: list[str]
    health: HealthDetail | None = None
    latest: list[TariffReading]
    polls: list[PollEntry] | None = Field(None, description="null when the collector does not run in this process")
    problems: list[ProblemEntry]


class PreviousValue(BaseModel):
    """The last accepted reading before a refused one (same meter and tariff)."""

    timestamp: datetime
    local_time: str
    values: ChannelValues
    source: str


class DashRejected(RejectedItem):
    """A refused reading with the meter's names and the previous accepted reading."""

    meter_name: str | None = None
    object: str | None = None
    local_time: str | None = None
    previous: PreviousValue | None = None


class DashRejectedPage(BaseModel):
    """Refused readings, newest first."""

    total: int
    items: list[DashRejected]


class AuditEntry(BaseModel):
    """One audit record."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    reason: str
    details: dict[str, Any]


__all__ = [
    "AuditEntry",
    "DashInfo",
    "DashMeter",
    "DashMeterDetail",
    "DashRejected",
    "DashRejectedPage",
    "DashSummary",
    "HealthDetail",
    "MissingItem",
    "PollEntry",
    "PreviousValue",
    "ProblemEntry",
    "StatusCounts",
    "TariffReading",
]
