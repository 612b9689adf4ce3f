"""IEC 62056-21 in the registry."""

from __future__ import annotations

from functools import partial

from amr.core.domain import Source
from amr.drivers.iec62056_21.settings import IecBusSettings, IecMeterSettings
from amr.drivers.spec import SERIAL_SCHEMES, DriverSpec, check_serial_url

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
    bus_settings=IecBusSettings,
    meter_settings=IecMeterSettings,
)
