"""``[clock]`` and ``[events]``: the clock policy per bus or meter, journal reading and alarms.

    [clock]
    threshold = "10s"          # a drift within this is left alone
    correct = true             # beyond it, the collector corrects within the protocol's limits
    check_every = "1h"         # meters whose polls do not report their clock: read it this often (default: never)
    allow_set = false          # a drift beyond the protocol's shift: set the time (admin level)
    [clock.buses.line1]        # overrides for one bus's meters ...
    threshold = "30s"
    [clock.meters."01100017"]  # ... and for one meter (meter over bus over [clock])
    allow_set = true
    admin_password = "222222"

    [events]
    read_every = "6h"          # read a meter's journals after a poll when this long has passed (default: never)
    [events.alarm]             # tampering and power loss: an MQTT message and/or an HTTP webhook
    mqtt = "mqtt://127.0.0.1:1883/amr/alarms"
    webhook = "https://example.org/hooks/amr"
    retry = "30s"
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from amr.core.durations import Duration


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClockOverride(_Section):
    """The keys a bus or a meter may override; unset keys come from the level above."""

    threshold: Duration | None = None
    correct: bool | None = None
    check_every: Duration | None = None
    allow_set: bool | None = None
    admin_password: str | None = Field(None, min_length=1, max_length=32, repr=False)


class ClockPolicy(_Section):
    """The policy in force for one meter."""

    threshold: Duration = timedelta(seconds=10)
    correct: bool = True
    check_every: Duration | None = None  # None: only polls that report the clock are checked
    allow_set: bool = False
    admin_password: str | None = Field(None, repr=False)

    def over(self, override: ClockOverride | None) -> ClockPolicy:
        """This policy with the keys `override` sets."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class ClockConfig(ClockPolicy):
    """``[clock]``: the site's policy, with overrides per bus and per meter."""

    buses: dict[str, ClockOverride] = {}
    meters: dict[str, ClockOverride] = {}

    @field_validator("threshold")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError('the threshold must be more than 0 s, e.g. "10s"')
        return value

    def policy(self, serial: str, bus: str | None) -> ClockPolicy:
        """The policy of meter `serial` on bus `bus`: the meter's keys over the bus's over ``[clock]``."""
        base = ClockPolicy(**self.model_dump(exclude={"buses", "meters"}))
        return base.over(self.buses.get(bus or "")).over(self.meters.get(serial))


def reference_errors(clock: ClockConfig, buses: Iterable[str], meters: Iterable[str]) -> list[str]:
    """One line per ``[clock.buses.X]`` or ``[clock.meters."S"]`` naming no configured bus or meter."""
    known_buses, known_meters = set(buses), set(meters)
    errors = [
        f"clock.buses.{name}: no bus named {name!r}; use one of the [[buses]] names"
        for name in clock.buses if name not in known_buses
    ]
    errors += [
        f"clock.meters.{serial}: no meter with serial {serial!r}; use one of the [[meters]] serials"
        for serial in clock.meters if serial not in known_meters
    ]
    return errors


class AlarmConfig(_Section):
    """``[events.alarm]``: where tampering and power-loss alarms go."""

    mqtt: str | None = Field(None, description="mqtt://host:port/topic")
    webhook: str | None = Field(None, description="http(s)://... receiving a JSON POST")
    retry: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=5)

    @field_validator("mqtt")
    @classmethod
    def _mqtt(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("mqtt://") or "/" not in value[len("mqtt://") :]):
            raise ValueError(f"write mqtt://host:port/topic; got {value!r}")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"write an http:// or https:// URL; got {value!r}")
        return value

    @property
    def enabled(self) -> bool:
        """True when at least one destination is configured."""
        return bool(self.mqtt or self.webhook)


class EventsConfig(_Section):
    """``[events]``: how often journals are read, and the alarm."""

    read_every: Duration | None = None  # None: journals are read only on demand (`amr events --read`, API)
    alarm: AlarmConfig = AlarmConfig()


__all__ = ["AlarmConfig", "ClockConfig", "ClockOverride", "ClockPolicy", "EventsConfig", "reference_errors"]
