"""Bodies of ``GET /api/v1/dispatch/collectors`` (`amr.api.routes.collectors`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LeaseItem(BaseModel):
    """One lease: a serial line, or a group of a Modbus TCP bus's devices."""

    lease: str = Field(description='the bus\'s name, or "bus/host:port" of a group\'s first device')
    bus: str
    meters: int = Field(description="meters the lease covers")
    holder: str | None = Field(description="the collector polling it now (host:pid:random); null: free")
    since: datetime | None = Field(description="held by that collector since (UTC)")
    expires: datetime | None = Field(description="when it expires unless renewed (UTC)")


class CollectorItem(BaseModel):
    """One `amr collect` process that took part."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime = Field(description="its last heartbeat (UTC)")
    stopped_at: datetime | None = Field(description="when it stopped gracefully; null while running or if it died")
    alive: bool = Field(description="a heartbeat within the lease TTL and not stopped")
    leases: int = Field(description="leases it holds now")


class CollectorsStatus(BaseModel):
    """Which collector holds which bus, since when, and each collector's last heartbeat."""

    sharing: bool = Field(description="false on SQLite or with [collector] leases = \"off\": one collector polls all")
    note: str | None = Field(description="why there are no leases, when sharing is false")
    now: datetime | None = Field(description="the database's time the status was read at")
    ttl_seconds: float = Field(description="[collector] lease_ttl")
    leases: list[LeaseItem]
    collectors: list[CollectorItem]
