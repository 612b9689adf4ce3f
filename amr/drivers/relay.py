"""The relay capability: drivers of meters with a load switch disconnect, reconnect and read it back.

A driver that can implements `RelaySwitch` (one method, `relay`) and its spec declares ``"relay"``
among its capabilities. `relay` is one session with the meter: it reads the switch, acts only
when the switch is not already where the action leads (so an action that reached the meter
before a lost answer is never carried out twice), and reads the switch back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from amr.config import MeterConfig

RelayAction = Literal["disconnect", "reconnect", "read"]
RelayStateName = Literal["connected", "disconnected", "ready_for_reconnection"]
ACTIONS: tuple[RelayAction, ...] = ("disconnect", "reconnect", "read")
STATE_NAMES: tuple[RelayStateName, ...] = ("disconnected", "connected", "ready_for_reconnection")


@dataclass(frozen=True, slots=True)
class RelayState:
    """The switch as read back from the meter.

    `state` is the control state (``ready_for_reconnection``: the meter allows reconnection but waits
    for the consumer, e.g. a button); `supplied` whether the load has power now (the output state);
    `acted` whether this session sent the action (False: the switch was there already).
    """

    state: RelayStateName
    supplied: bool
    acted: bool = False


def reached(action: RelayAction, state: RelayStateName) -> bool:
    """True when the switch already is where `action` leads (a reconnect also ends at ready_for_reconnection)."""
    if action == "disconnect":
        return state == "disconnected"
    if action == "reconnect":
        return state != "disconnected"
    return True


@runtime_checkable
class RelaySwitch(Protocol):
    """A poll driver that drives a meter's load switch."""

    async def relay(self, meter: MeterConfig, action: RelayAction) -> RelayState:
        """Carry out `action` (``read``: only read) and read the switch back; `DriverError` on failure."""
        ...
