"""DLMS/COSEM (СПОДЭС) in the registry: ``dlms-tcp`` (TCP wrapper, HDLC over TCP) and ``dlms-hdlc`` (serial)."""

from __future__ import annotations

from functools import partial

from amr.config import MeterConfig
from amr.core.domain import Source
from amr.drivers.dlms.settings import DlmsHdlcBusSettings, DlmsMeterSettings, DlmsTcpBusSettings, meter_table
from amr.drivers.spec import SERIAL_SCHEMES, DriverSpec, check_serial_url


def _tcp_url(url: str) -> None:
    if not url.startswith("tcp://"):
        raise ValueError(f'a dlms-tcp bus needs url = "tcp://host:4059"; got {url!r}')


def _address(meter: MeterConfig) -> None:
    meter_table(meter)


DLMS_TCP = DriverSpec(
    kind="dlms-tcp",
    labels={"ru": "DLMS/COSEM (СПОДЭС) TCP", "en": "DLMS/COSEM TCP"},
    source=Source.DLMS,
    push=False,
    serial_line=False,
    url_schemes=("tcp://",),
    capabilities=frozenset({"registers", "clock", "relay", "quality", "profiles", "journal"}),
    driver="amr.drivers.dlms.driver:DlmsTcpDriver",
    simulator="amr.drivers.dlms.simulate:DLMS",
    check_url=_tcp_url,
    check_address=_address,
    bus_settings=DlmsTcpBusSettings,
    meter_settings=DlmsMeterSettings,
)
DLMS_HDLC = DriverSpec(
    kind="dlms-hdlc",
    labels={"ru": "DLMS/COSEM (СПОДЭС) HDLC", "en": "DLMS/COSEM HDLC"},
    source=Source.DLMS,
    push=False,
    serial_line=True,
    url_schemes=SERIAL_SCHEMES,
    capabilities=frozenset({"registers", "clock", "relay", "quality", "profiles", "journal"}),
    driver="amr.drivers.dlms.driver:DlmsHdlcDriver",
    simulator="amr.drivers.dlms.simulate:DLMS",
    check_url=partial(check_serial_url, "dlms-hdlc"),
    check_address=_address,
    bus_settings=DlmsHdlcBusSettings,
    meter_settings=DlmsMeterSettings,
)
