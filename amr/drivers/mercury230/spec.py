"""Mercury 230/234 in the registry."""

from __future__ import annotations

from functools import partial

from amr.core.domain import Source
from amr.drivers.mercury230.settings import MercuryBusSettings, MercuryMeterSettings
from amr.drivers.spec import SERIAL_SCHEMES, DriverSpec, check_serial_url

MERCURY230 = DriverSpec(
    kind="mercury230",
    labels={"ru": "Меркурий 230", "en": "Mercury 230"},
    source=Source.SERIAL,
    push=False,
    serial_line=True,
    url_schemes=SERIAL_SCHEMES,
    capabilities=frozenset({"registers", "clock", "journal", "profiles", "quality"}),
    driver="amr.drivers.mercury230.driver:Mercury230Driver",
    simulator="amr.drivers.mercury230.simulate:MERCURY230",
    check_url=partial(check_serial_url, "mercury230"),
    bus_settings=MercuryBusSettings,
    meter_settings=MercuryMeterSettings,
)
