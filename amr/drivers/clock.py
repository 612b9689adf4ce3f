"""The ``clock`` capability: a driver that reads the meter's clock, corrects it by a shift, and sets it.

A driver with ``clock`` in its spec's capabilities implements `ClockKeeper`. Its `ClockLimits`
say what the protocol allows, so that the collector's policy (`amr.operations.clock`) corrects
only within them: Mercury 230 shifts at most ±4 minutes once a day at the user level and sets
the time only at the admin level; IEC 62056-21 writes ``0.9.1``/``0.9.2`` in programming mode
after the password; DLMS writes the clock's attribute 2 (or calls its shift method).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from amr.config import MeterConfig


@dataclass(frozen=True, slots=True)
class ClockLimits:
    """What a protocol allows: the largest shift (None: any), once a day or not, and whether the
    time can be set outright (`set_needs`: what setting takes, e.g. "the admin password")."""

    max_shift: timedelta | None
    once_a_day: bool = False
    can_set: bool = True
    set_needs: str = ""


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The meter's clock (UTC) and the head-end's time it was compared with (the middle of the exchange)."""

    meter_time: datetime
    read_at: datetime
    raw: dict[str, object] = field(default_factory=dict)

    @property
    def drift(self) -> timedelta:
        """The meter's clock minus the head-end's: positive when the meter runs ahead."""
        return self.meter_time - self.read_at


@runtime_checkable
class ClockKeeper(Protocol):
    """A poll driver that keeps the meter's clock (capability ``clock``)."""

    clock_limits: ClockLimits

    async def read_clock(self, meter: MeterConfig) -> ClockReading:
        """Read the meter's clock in a session of its own."""
        ...

    async def shift_clock(self, meter: MeterConfig, by: timedelta) -> None:
        """Move the meter's clock by `by` (within `clock_limits.max_shift`); `DeviceError` when refused."""
        ...

    async def set_clock(self, meter: MeterConfig, to: datetime, password: str | None = None) -> None:
        """Set the meter's clock to `to` (UTC); `password`: the higher access level's, where the protocol
        needs one; `DeviceError` when refused."""
        ...


__all__ = ["ClockKeeper", "ClockLimits", "ClockReading"]
