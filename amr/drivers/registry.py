"""The registry of protocols: one line per bus kind.

Adding a protocol is a package under `amr/drivers/` (driver, settings, errors, simulator hook,
spec) and one line here. Importing this module imports only the specs, never a driver.
"""

from __future__ import annotations

from amr.drivers.dlms.spec import DLMS_HDLC, DLMS_TCP
from amr.drivers.iec62056_21.spec import IEC62056_21
from amr.drivers.mercury230.spec import MERCURY230
from amr.drivers.modbus.spec import MODBUS_RTU, MODBUS_TCP
from amr.drivers.mqtt.spec import MQTT
from amr.drivers.spec import DriverSpec

PROTOCOLS: dict[str, DriverSpec] = {
    "modbus-tcp": MODBUS_TCP,
    "modbus-rtu": MODBUS_RTU,
    "mercury230": MERCURY230,
    "iec62056-21": IEC62056_21,
    "mqtt": MQTT,
    "dlms-tcp": DLMS_TCP, "dlms-hdlc": DLMS_HDLC,
}
KINDS: tuple[str, ...] = tuple(PROTOCOLS)


def spec(kind: str) -> DriverSpec:
    """The spec of bus kind `kind`; `ValueError` naming the known kinds."""
    try:
        return PROTOCOLS[kind]
    except KeyError:
        raise ValueError(f"unknown bus kind {kind!r}; use one of {', '.join(KINDS)}") from None


__all__ = ["KINDS", "PROTOCOLS", "spec"]
