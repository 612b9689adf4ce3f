"""Mercury 230/234 in the registry."""

from __future__ import annotations

from functools import partial

from amr.config import MeterConfig
from amr.core.domain import Source
from amr.drivers.mercury230.settings import MercuryBusSettings, MercuryMeterSettings
from amr.drivers.spec import SERIAL_SCHEMES, DriverSpec, check_serial_url

MIN_ADDRESS = 1
MAX_ADDRESS = 240  # 0 is the universal address every meter answers; 241..255 are reserved by the protocol


def bus_address(address: int | str | None) -> int:
    """The bus address `address` gives (1..240); `ValueError` naming the value and the fix."""
    if type(address) is int and MIN_ADDRESS <= address <= MAX_ADDRESS:  # the usual case, at once
        return address
    text = "" if address is None else str(address).strip()
    if not (text.isascii() and text.isdigit() and MIN_ADDRESS <= int(text) <= MAX_ADDRESS):
        raise ValueError(
            f"{address!r} is not a Mercury 230 address; write a whole number {MIN_ADDRESS}..{MAX_ADDRESS} "
            "(usually the last three digits of the serial number; 0 is the universal address every meter answers)"
        )
    return int(text)


def _address(meter: MeterConfig) -> None:
    bus_address(meter.address)

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
    check_address=_address,
    bus_settings=MercuryBusSettings,
    meter_settings=MercuryMeterSettings,
)
