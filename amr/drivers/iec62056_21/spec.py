"""IEC 62056-21 in the registry."""

from __future__ import annotations

import re
from functools import cache, partial

from amr.config import MeterConfig
from amr.core.domain import Source
from amr.drivers.iec62056_21.settings import IecBusSettings, IecMeterSettings
from amr.drivers.spec import SERIAL_SCHEMES, DriverSpec, check_serial_url


@cache
def _device_address() -> re.Pattern[str]:
    from amr.protocols.iec62056_21.messages import DEVICE_ADDRESS  # the protocol's package, once there is a meter

    return DEVICE_ADDRESS


def _address(meter: MeterConfig) -> None:
    if _device_address().fullmatch(str(meter.address)) is None:
        raise ValueError(
            f"{meter.address!r} is not an IEC 62056-21 device address; write up to 32 letters, digits or spaces "
            '(the meter\'s own, often its serial number, e.g. "45678903"), no other signs such as / ! ?'
        )


IEC62056_21 = DriverSpec(
    kind="iec62056-21",
    labels={"ru": "МЭК 62056-21", "en": "IEC 62056-21"},
    source=Source.SERIAL,
    push=False,
    serial_line=True,
    url_schemes=SERIAL_SCHEMES,
    capabilities=frozenset({"registers", "clock", "journal", "profiles"}),  # 0.9.1/0.9.2 after the password; P.98; P.01
    driver="amr.drivers.iec62056_21.driver:Iec62056Driver",
    simulator="amr.drivers.iec62056_21.simulate:IEC62056_21",
    check_url=partial(check_serial_url, "iec62056-21"),
    check_address=_address,
    bus_settings=IecBusSettings,
    meter_settings=IecMeterSettings,
)
