"""The driver interface: poll drivers (open a bus, read a meter, close) and push drivers (listen, hand over).

A driver speaks one protocol and reports what the meter said, at the meter's side of
the instrument transformers (`MeterValues`); `amr.drivers.normalise` turns that into
readings for the validation pipeline. Library exceptions (pymodbus, pyserial, paho)
are translated at the driver's edge into `amr.errors.DriverError` subclasses. A failure
on one channel or tariff is recorded in `MeterValues.errors` and never loses the
values that were read.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import ClassVar

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Values
from amr.core.intervals import ProfileRecord


@dataclass(frozen=True, slots=True)
class MeterValues:
    """What one meter said in one poll or message.

    `tariffs` maps tariff zone (0 total, 1..4) to channel values in Wh/varh as the
    meter's registers count them (secondary side). `meter_time` is the meter's own
    clock when the protocol reports it; `polled_at` is when we asked (UTC). `profile`
    holds interval values a message carried (an MQTT gateway publishing a load profile).
    """

    serial: str
    tariffs: dict[int, Values]
    polled_at: datetime
    meter_time: datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)
    raw: dict[str, object] = field(default_factory=dict)
    profile: list[ProfileRecord] = field(default_factory=list)


class PollDriver(abc.ABC):
    """A protocol the collector asks: open the bus, read meters, close.

    The collector promises never to call `read` concurrently for drivers whose
    `serial_line` is True (RS-485 is half-duplex) and never twice at once for one meter.
    """

    kind: ClassVar[str]
    source: ClassVar[str]  # "askue:modbus", "askue:serial"
    serial_line: ClassVar[bool] = True

    def __init__(self, bus: BusConfig, *, tz: tzinfo = UTC) -> None:
        self.bus = bus
        self.tz = tz  # the site's zone, for meters whose clocks report local time

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the bus (port, socket); raise `ConnectError` when it cannot be opened."""

    @abc.abstractmethod
    async def read(self, meter: MeterConfig) -> MeterValues:
        """Read one meter; raise `ReadTimeout`, `ProtocolError`, `DeviceError` or `ConnectError`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the bus; never raises."""


Sink = Callable[[MeterValues], Awaitable[None]]


class PushDriver(abc.ABC):
    """A protocol that delivers on its own (MQTT): listen and hand each meter's values to a sink."""

    kind: ClassVar[str]
    source: ClassVar[str]  # "askue:mqtt"

    def __init__(self, bus: BusConfig, meters: Sequence[MeterConfig], *, tz: tzinfo = UTC) -> None:
        self.bus = bus
        self.meters = list(meters)
        self.tz = tz  # the site's zone, for payload times written without an offset

    @abc.abstractmethod
    async def run(self, sink: Sink) -> None:
        """Deliver values to `sink` until cancelled; reconnect with backoff on its own."""
