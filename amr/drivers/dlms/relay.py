"""The DLMS disconnect control (СПОДЭС relay): state read, remote disconnect and reconnect.

Disconnect control 0.0.96.3.10.255, interface class 70 (DLMS UA 1000-1 "Blue Book", Disconnect
control): attribute 2 output_state (boolean: true while the load is supplied), attribute 3
control_state (enum: 0 disconnected, 1 connected, 2 ready_for_reconnection); method 1
remote_disconnect and method 2 remote_reconnect, each invoked with ``integer(0)`` (``0F 00``).
Whether remote_reconnect ends at connected or at ready_for_reconnection (the consumer reconnects
by hand) is the meter's control_mode; both are success here, reported as read back::

    GET    C0 01 II 00 46 00 00 60 03 0A FF 03 00    control_state → 16 01 (enum 1: connected)
    ACTION C3 01 II 00 46 00 00 60 03 0A FF 01 01 0F 00
    GET    ... attribute 02 → 03 FF (boolean true) / 03 00

One session (`operate`): read the state; act only when the switch is not already where the action
leads (an action whose answer was lost before is not repeated); read back both attributes.
"""

from __future__ import annotations

from dlms_cosem import dlms_data  # type: ignore[import-untyped]

from amr.drivers.dlms import errors, values
from amr.drivers.dlms.operations import action
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import MeterLink
from amr.drivers.relay import STATE_NAMES, RelayAction, RelayState, reached

DISCONNECT_CONTROL = 70
DISCONNECT_OBIS = "0.0.96.3.10.255"
OUTPUT_STATE, CONTROL_STATE = 2, 3
METHODS = {"disconnect": 1, "reconnect": 2}
PARAMETER = bytes((0x0F, 0x00))  # integer(0): the methods' only argument


def read_state(session: Session) -> RelayState:
    """The control state and output state of the disconnect control."""
    control = values.decode(session.get(DISCONNECT_CONTROL, DISCONNECT_OBIS, CONTROL_STATE))
    if not isinstance(control, dlms_data.EnumData) or not 0 <= control.value < len(STATE_NAMES):
        raise errors.protocol(f"{DISCONNECT_OBIS} control_state is not an enum 0..2: {control!r}", errors.VALUE,
                              retryable=False)
    output = values.decode(session.get(DISCONNECT_CONTROL, DISCONNECT_OBIS, OUTPUT_STATE))
    if not isinstance(output, dlms_data.BooleanData):
        raise errors.protocol(f"{DISCONNECT_OBIS} output_state is not a boolean: {output!r}", errors.VALUE,
                              retryable=False)
    return RelayState(STATE_NAMES[control.value], bool(output.value))


def operate(session: Session, _link: MeterLink, what: RelayAction) -> RelayState:
    """Read the switch, carry out `what` unless it is there already, read it back."""
    before = read_state(session)
    if what == "read" or reached(what, before.state):
        return before
    action(session, DISCONNECT_CONTROL, DISCONNECT_OBIS, METHODS[what], PARAMETER)
    after = read_state(session)
    return RelayState(after.state, after.supplied, acted=True)
