"""Meter drivers: one package per protocol, found through the registry (`amr.drivers.registry`).

Each package (``modbus``, ``iec62056_21``, ``mercury230``, ``mqtt``) holds its driver, its
settings, what its errors mean and its simulator hook; its `DriverSpec` names its bus kind,
labels, the reading source it writes, whether it is polled or pushed, its URL forms and
capabilities. Drivers are imported on first use, so the configuration loader stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, tzinfo

from amr.config import BusConfig, MeterConfig
from amr.drivers.base import MeterValues, PollDriver, PushDriver, Sink
from amr.drivers.registry import PROTOCOLS
from amr.errors import ConfigError


def is_push(bus: BusConfig) -> bool:
    """True for buses that deliver on their own (MQTT)."""
    return PROTOCOLS[bus.kind].push


def poll_driver(bus: BusConfig, tz: tzinfo = UTC) -> PollDriver:
    """The poll driver for `bus`."""
    spec = PROTOCOLS.get(bus.kind)
    if spec is None or spec.push:
        raise ConfigError(f"bus {bus.name!r}: {bus.kind} is not a polled bus kind")
    driver: PollDriver = spec.driver_class()(bus, tz=tz)
    return driver


def push_driver(bus: BusConfig, meters: Sequence[MeterConfig], tz: tzinfo = UTC) -> PushDriver:
    """The push driver for `bus`, listening for `meters`."""
    spec = PROTOCOLS.get(bus.kind)
    if spec is None or not spec.push:
        raise ConfigError(f"bus {bus.name!r}: {bus.kind} is not a push bus kind")
    driver: PushDriver = spec.driver_class()(bus, meters, tz=tz)
    return driver


__all__ = ["MeterValues", "PollDriver", "PushDriver", "Sink", "is_push", "poll_driver", "push_driver"]
