"""The disconnect control and the instantaneous values of a simulated СПОДЭС meter, and ACTION on them.

Disconnect control 0.0.96.3.10.255 (class 70, version 0; DLMS UA 1000-1 "Blue Book", Disconnect
control): attribute 2 output_state (boolean, true: the load is supplied), 3 control_state (enum 0
disconnected, 1 connected, 2 ready_for_reconnection), 4 control_mode (enum; 4 here: remote
disconnection from connected or ready_for_reconnection, remote reconnection straight to connected).
Methods (each takes ``integer(0)``): 1 remote_disconnect, 2 remote_reconnect. Only the configurator
(client 48) may invoke them; any other client gets read-write-denied. The state is the virtual
meter's load switch (`simulators.model.VirtualMeter.switch`), so a disconnected meter's energy
stops growing::

    C3 01 II 00 46 00 00 60 03 0A FF 01 01 0F 00   Action-Request-Normal: class 70, 0.0.96.3.10.255,
                                                   method 1, parameters present, integer(0)
    C7 01 II 00 00                                 Action-Response-Normal: success, no return parameters

Instantaneous values (class 3 registers, IEC 62056-61 OBIS, as СПОДЭС lists them): voltage L1/L2/L3
1.0.32/52/72.7.0.255 (0.01 V), current 1.0.31/51/71.7.0.255 (mA), active power L1/L2/L3 and total
1.0.21/41/61/1.7.0.255 (0.1 W, signed: export negative), power factor L1/L2/L3 and total
1.0.33/53/73/13.7.0.255 (0.001), frequency 1.0.14.7.0.255 (0.01 Hz). Scaler-unit units (Blue Book
table of units): 35 V, 33 A, 27 W, 44 Hz, 255 no unit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from dlms_cosem import enumerations as enums  # type: ignore[import-untyped]
from dlms_cosem.protocol import xdlms  # type: ignore[import-untyped]

from simulators.dlms import axdr
from simulators.dlms.objects import DISCONNECT_CONTROL, OBJECTS, REGISTER, CosemObject, Obis, Reading
from simulators.model import VirtualMeter
from simulators.quality import Instant, instant

DISCONNECT_OBIS: Obis = (0, 0, 96, 3, 10, 255)
REMOTE_DISCONNECT, REMOTE_RECONNECT = 1, 2
CONTROL_MODE = 4
STATES = {"disconnected": 0, "connected": 1, "ready_for_reconnection": 2}
DOUBLE_LONG = 0x05  # Integer32
UNIT_V, UNIT_A, UNIT_W, UNIT_HZ, UNIT_NONE = 35, 33, 27, 44, 255
ACTIONS: dict[str, int] = {}  # serial → ACTIONs on the disconnect control it carried out (tests count them)


def _meter(reading: Reading) -> VirtualMeter:
    if reading.meter is None:
        raise ValueError("a reading without its meter")
    meter: VirtualMeter = reading.meter
    return meter


def _instant(reading: Reading) -> Instant:
    return instant(_meter(reading), reading.at)


def _disconnect_control() -> CosemObject:
    return CosemObject(
        DISCONNECT_CONTROL,
        0,
        DISCONNECT_OBIS,
        {
            2: lambda r: axdr.boolean(_meter(r).relay == "connected"),
            3: lambda r: axdr.enum(STATES[_meter(r).relay]),
            4: lambda _: axdr.enum(CONTROL_MODE),
        },
    )


def _signed(value: int) -> bytes:
    return bytes((DOUBLE_LONG,)) + value.to_bytes(4, "big", signed=True)


def _instantaneous(c: int, scaler: int, unit: int, value: Callable[[Instant], float]) -> CosemObject:
    def encoded(reading: Reading) -> bytes:
        raw = round(value(_instant(reading)) / 10**scaler)
        if unit in (UNIT_W, UNIT_NONE):
            return _signed(raw)
        return axdr.double_long_unsigned(max(raw, 0))

    scaler_unit = axdr.structure(axdr.integer(scaler), axdr.enum(unit))
    return CosemObject(REGISTER, 0, (1, 0, c, 7, 0, 255), {2: encoded, 3: lambda _: scaler_unit})


def _phase(phase: int, what: Callable[[Instant], tuple[float, float, float]]) -> Callable[[Instant], float]:
    return lambda i: what(i)[phase]


def objects() -> list[CosemObject]:
    """The disconnect control and the instantaneous-value registers."""
    found = [_disconnect_control()]
    for phase, base in enumerate((20, 40, 60)):
        found += [
            _instantaneous(base + 12, -2, UNIT_V, _phase(phase, lambda i: i.voltage)),
            _instantaneous(base + 11, -3, UNIT_A, _phase(phase, lambda i: i.current)),
            _instantaneous(base + 1, -1, UNIT_W, _phase(phase, lambda i: i.power)),
            _instantaneous(base + 13, -3, UNIT_NONE, _phase(phase, lambda i: i.power_factor)),
        ]
    found += [
        _instantaneous(1, -1, UNIT_W, lambda i: i.power_total),
        _instantaneous(13, -3, UNIT_NONE, lambda i: i.power_factor_total),
        _instantaneous(14, -2, UNIT_HZ, lambda i: i.frequency),
    ]
    return found


OBJECTS.update({obj.obis: obj for obj in objects()})


def act(apdu: bytes, client_sap: int, configurator: int, reading: Reading) -> bytes:
    """The Action-Response-Normal to an Action-Request-Normal (`apdu`) on the disconnect control."""
    invoke = xdlms.InvokeIdAndPriority.from_bytes(apdu[2:3])
    status = _status(apdu, client_sap, configurator, reading)
    return bytes(xdlms.ActionResponseNormal(status=status, invoke_id_and_priority=invoke).to_bytes())


def _status(apdu: bytes, client_sap: int, configurator: int, reading: Reading) -> enums.ActionResultStatus:
    if len(apdu) < 13 or apdu[1] != 1:
        return enums.ActionResultStatus.OTHER_REASON
    class_id = int.from_bytes(apdu[3:5], "big")
    obis = (apdu[5], apdu[6], apdu[7], apdu[8], apdu[9], apdu[10])
    method, parameters = apdu[11], apdu[12:]
    obj = OBJECTS.get(obis)
    if obj is None:
        return enums.ActionResultStatus.OBJECT_UNDEFINED
    if obj.class_id != class_id:
        return enums.ActionResultStatus.OBJECT_CLASS_INCONSISTENT
    if class_id != DISCONNECT_CONTROL or method not in (REMOTE_DISCONNECT, REMOTE_RECONNECT):
        return enums.ActionResultStatus.OBJECT_UNAVAILABLE
    if client_sap != configurator:
        return enums.ActionResultStatus.READ_WRITE_DENIED
    if parameters not in (b"\x01\x0f\x00", b"\x00"):  # integer(0), or no parameters at all
        return enums.ActionResultStatus.TYPE_UNMATCHED
    meter = _meter(reading)
    meter.switch("disconnected" if method == REMOTE_DISCONNECT else "connected", reading.at or datetime.now(UTC))
    ACTIONS[meter.serial] = ACTIONS.get(meter.serial, 0) + 1
    if meter.faults.relay_delay:
        time.sleep(meter.faults.relay_delay)  # the relay has moved; the answer comes late (a worker thread)
    return enums.ActionResultStatus.SUCCESS
