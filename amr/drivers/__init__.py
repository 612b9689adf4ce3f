"""Meter drivers, one protocol a module, and the explicit registry of bus kinds.

==============  =====================  ======  ================
bus kind        driver                 kind    source
==============  =====================  ======  ================
modbus-tcp      `ModbusTcpDriver`      poll    askue:modbus
modbus-rtu      `ModbusRtuDriver`      poll    askue:modbus
iec62056-21     `Iec62056Driver`       poll    askue:serial
mercury230      `Mercury230Driver`     poll    askue:serial
mqtt            `MqttDriver`           push    askue:mqtt
==============  =====================  ======  ================
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, tzinfo

from amr.config import BusConfig, MeterConfig
from amr.drivers.base import MeterValues, PollDriver, PushDriver, Sink
from amr.drivers.iec62056_21 import Iec62056Driver
from amr.drivers.mercury230 import Mercury230Driver
from amr.drivers.modbus import ModbusRtuDriver, ModbusTcpDriver
from amr.drivers.mqtt import MqttDriver
from amr.errors import ConfigError

POLL_DRIVERS: dict[str, type[PollDriver]] = {
    "modbus-tcp": ModbusTcpDriver,
    "modbus-rtu": ModbusRtuDriver,
    "iec62056-21": Iec62056Driver,
    "mercury230": Mercury230Driver,
}
PUSH_DRIVERS: dict[str, type[PushDriver]] = {"mqtt": MqttDriver}


def is_push(bus: BusConfig) -> bool:
    """True for buses that deliver on their own (MQTT)."""
    return bus.kind in PUSH_DRIVERS


def poll_driver(bus: BusConfig, tz: tzinfo = UTC) -> PollDriver:
    """The poll driver for `bus`."""
    try:
        return POLL_DRIVERS[bus.kind](bus, tz=tz)
    except KeyError:
        raise ConfigError(f"bus {bus.name!r}: {bus.kind} is not a polled bus kind") from None


def push_driver(bus: BusConfig, meters: Sequence[MeterConfig], tz: tzinfo = UTC) -> PushDriver:
    """The push driver for `bus`, listening for `meters`."""
    try:
        return PUSH_DRIVERS[bus.kind](bus, meters, tz=tz)
    except KeyError:
        raise ConfigError(f"bus {bus.name!r}: {bus.kind} is not a push bus kind") from None


__all__ = [
    "POLL_DRIVERS",
    "PUSH_DRIVERS",
    "MeterValues",
    "PollDriver",
    "PushDriver",
    "Sink",
    "is_push",
    "poll_driver",
    "push_driver",
]
