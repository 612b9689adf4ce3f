"""What the registry knows of a protocol: `DriverSpec`, and the simulator hook a protocol registers.

A spec is light: it names its driver class and simulator hook by import path (``module:name``)
and loads them on first use, so reading the registry (the configuration loader, the API's
protocol list) imports no protocol library.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from amr.config import BusSettings, MeterConfig, MeterSettings
from amr.core.domain import Source

Capability = Literal["registers", "profiles", "clock", "journal", "relay", "quality"]
CAPABILITIES: tuple[Capability, ...] = ("registers", "profiles", "clock", "journal", "relay", "quality")


def load(path: str) -> Any:
    """The object at ``module:name``."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


Serving = tuple[str, Awaitable[object]]  # the URL a bus reaches the simulator at, and its run until cancelled


@dataclass(frozen=True, slots=True)
class SimulatorHook:
    """How `amr sim KIND` runs a protocol's virtual meters.

    `add_options` adds the protocol's own command-line options; `serve` starts the simulator on
    `stack` and returns the URL a bus reaches it at and what to await while it runs; `bus_lines` and
    `meter_lines` are the protocol's keys of the configuration snippet printed for `amr collect`.
    """

    add_options: Callable[[argparse._ArgumentGroup], None]
    serve: Callable[[str, argparse.Namespace, Sequence[Any], contextlib.AsyncExitStack], Awaitable[Serving]]
    bus_lines: Callable[[str, argparse.Namespace], list[str]]
    meter_lines: Callable[[str, Any], list[str]]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """One bus kind: its names, what it writes, how it is reached and what its driver does."""

    kind: str  # the bus kind of the configuration: kind = "modbus-tcp"
    labels: Mapping[str, str]  # language → the protocol's name for people: {"ru": ..., "en": ...}
    source: Source  # the source of the readings it writes
    push: bool  # True: the devices report by themselves (MQTT); False: the collector polls
    serial_line: bool  # a half-duplex line: one request at a time
    url_schemes: tuple[str, ...]  # what a bus url starts with ("" for a port path such as /dev/ttyUSB0)
    capabilities: frozenset[Capability]
    driver: str  # "module:Class" of its `PollDriver` / `PushDriver`
    simulator: str  # "module:NAME" of its `SimulatorHook`
    check_url: Callable[[str], None]  # raises ValueError naming the form this kind takes
    check_address: Callable[[MeterConfig], None]  # raises ValueError naming the meter's address and the form it takes
    bus_settings: type[BusSettings]  # the model of its bus keys beside the common ones (light module)
    meter_settings: type[MeterSettings]  # the model of its meters' keys beside the common ones

    def label(self, language: str = "en") -> str:
        """The protocol's name in `language` (English when it has none)."""
        return self.labels.get(language) or self.labels["en"]

    def driver_class(self) -> type[Any]:
        """The driver class (imported on first use)."""
        cls: type[Any] = load(self.driver)
        return cls

    def simulator_hook(self) -> SimulatorHook:
        """The simulator hook (imported on first use)."""
        hook: SimulatorHook = load(self.simulator)
        return hook


SERIAL_SCHEMES = ("", "socket://", "rfc2217://")


def any_address(meter: MeterConfig) -> None:
    """The address check of a kind that takes any address (none is refused)."""


def check_serial_url(kind: str, url: str) -> None:
    """A serial line is a port or a pyserial URL, never a TCP or MQTT address."""
    if url.startswith(("tcp://", "mqtt://")):
        raise ValueError(
            f"a {kind} bus is a serial line: use a port (/dev/ttyUSB0) or a pyserial URL "
            f"(socket://host:port, rfc2217://host:port); got {url!r}"
        )
