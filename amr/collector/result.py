"""The result of one poll, as the collector, ``amr collect --once`` and the API's «poll now» see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from amr.collector.writer import Delivery
from amr.core.domain import CHANNELS, IncomingReading, kwh_from_wh
from amr.drivers.base import MeterValues
from amr.errors import DriverError

if TYPE_CHECKING:
    from amr.collector.collector import Collector


@dataclass(slots=True)
class PollResult:
    """One poll of one meter: what was read (or why not) and what the store made of it."""

    serial: str
    bus: str
    started_at: datetime
    finished_at: datetime
    attempts: int = 0
    values: MeterValues | None = None
    error: str | None = None
    error_kind: str | None = None
    error_code: str | None = None  # the driver error's stable code (`amr.errors.DriverError.code`)
    readings: list[IncomingReading] = field(default_factory=list)
    delivery: Delivery | None = None
    store_error: str | None = None
    skipped: bool = False  # not polled: the collector was stopping
    status: str | None = None  # the meter's health after this poll
    exception: BaseException | None = field(default=None, repr=False)  # the driver's last error

    @property
    def ok(self) -> bool:
        """True when the meter answered with values."""
        return self.values is not None

    @property
    def seconds(self) -> float:
        """How long the poll took."""
        return (self.finished_at - self.started_at).total_seconds()

    def channels(self, tariff: int = 0) -> dict[str, str | None] | None:
        """The channels of one tariff zone at the primary side in kWh / kvarh (exact text), if read."""
        for reading in self.readings:
            if reading.tariff == tariff and not reading.problems:
                values = reading.values
                return {c.value: None if (v := values.get(c)) is None else str(kwh_from_wh(v)) for c in CHANNELS}
        return None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values: one meter's entry of ``amr collect --once --json`` and the API's «poll now»."""
        summary = self.delivery.summary if self.delivery is not None else None
        return {
            "serial": self.serial,
            "bus": self.bus,
            "ok": self.ok,
            "error": self.error or self.store_error,
            "error_kind": self.error_kind or ("StoreError" if self.store_error else None),
            "error_code": self.error_code,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "polled_at": self.started_at.isoformat(),
            "values": self.channels(0),
            "errors": dict(self.values.errors) if self.values is not None else {},
            "accepted": summary.accepted if summary else 0,
            "duplicate": summary.duplicate if summary else 0,
            "rejected": dict(sorted(summary.rejected.items())) if summary else {},
            "buffered": bool(self.delivery and self.delivery.buffered),
        }


class ApiPoller:
    """«Poll now» for the API (`amr.api.context.Poller`): the result as a dict, a failed read raised."""

    def __init__(self, collector: Collector) -> None:
        """Poll through `collector`."""
        self.collector = collector

    async def poll_now(self, serial: str) -> dict[str, Any]:
        """Poll `serial` (joining a poll in flight); raise the driver's error (a `DriverError`) when
        nothing was read, `NotFound` when the collector does not poll that meter."""
        result = await self.collector.poll_now(serial)
        if isinstance(result.exception, DriverError):
            raise result.exception
        if not result.ok:
            raise DriverError(result.error or "the meter was not polled")
        return result.as_dict()
