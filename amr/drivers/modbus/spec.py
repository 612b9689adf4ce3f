"""Modbus TCP and RTU in the registry."""

from __future__ import annotations

from amr.core.domain import Source
from amr.drivers.modbus.settings import ModbusMeterSettings, ModbusRtuBusSettings, ModbusTcpBusSettings
from amr.drivers.spec import SERIAL_SCHEMES, DriverSpec, check_serial_url


def _tcp_url(url: str) -> None:
    if not url.startswith("tcp://"):
        raise ValueError(f'a modbus-tcp bus needs url = "tcp://host:502"; got {url!r}')


def _rtu_url(url: str) -> None:
    check_serial_url("modbus-rtu", url)
    if url.startswith("rfc2217://"):
        raise ValueError(
            "a modbus-rtu bus cannot poll through rfc2217:// (its serial client needs a port with a file "
            f"descriptor); set the converter to raw TCP and use socket://host:port; got {url!r}"
        )


MODBUS_TCP = DriverSpec(
    kind="modbus-tcp",
    labels={"ru": "Modbus TCP", "en": "Modbus TCP"},
    source=Source.MODBUS,
    push=False,
    serial_line=False,
    url_schemes=("tcp://",),
    capabilities=frozenset({"registers", "quality"}),  # its "profile" key is a register map; it reads no load profile
    driver="amr.drivers.modbus.driver:ModbusTcpDriver",
    simulator="amr.drivers.modbus.simulate:MODBUS_TCP",
    check_url=_tcp_url,
    bus_settings=ModbusTcpBusSettings,
    meter_settings=ModbusMeterSettings,
)
MODBUS_RTU = DriverSpec(
    kind="modbus-rtu",
    labels={"ru": "Modbus RTU", "en": "Modbus RTU"},
    source=Source.MODBUS,
    push=False,
    serial_line=True,
    url_schemes=tuple(s for s in SERIAL_SCHEMES if s != "rfc2217://"),
    capabilities=frozenset({"registers", "quality"}),  # its "profile" key is a register map; it reads no load profile
    driver="amr.drivers.modbus.driver:ModbusRtuDriver",
    simulator="amr.drivers.modbus.simulate:MODBUS_RTU",
    check_url=_rtu_url,
    bus_settings=ModbusRtuBusSettings,
    meter_settings=ModbusMeterSettings,
)
