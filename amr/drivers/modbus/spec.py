"""Modbus TCP and RTU in the registry."""

from __future__ import annotations

from urllib.parse import urlsplit

from amr.config import MeterConfig
from amr.core.domain import Source
from amr.drivers.modbus.settings import ModbusMeterSettings, ModbusRtuBusSettings, ModbusTcpBusSettings
from amr.drivers.spec import SERIAL_SCHEMES, DriverSpec, check_serial_url

TCP_UNITS = (0, 255)  # the MBAP header's unit identifier is one byte; a gateway passes it on to its line
RTU_UNITS = (1, 247)  # Modbus over serial line 2.2: 0 is the broadcast, which no device answers; 248..255 reserved


def unit_id(address: int | str | None, units: tuple[int, int]) -> int:
    """The unit id `address` gives (a whole number within `units`); `ValueError` naming the value and the fix."""
    if type(address) is int and units[0] <= address <= units[1]:  # the usual case, at once
        return address
    text = "" if address is None else str(address).strip()
    if not (text.isascii() and text.isdigit() and units[0] <= int(text) <= units[1]):
        why = " (0 is the broadcast address, which no meter answers; 248..255 are reserved)" if units[0] else ""
        raise ValueError(f"{address!r} is not a Modbus unit id; write a whole number {units[0]}..{units[1]}{why}")
    return int(text)


def tcp_target(address: int | str | None) -> tuple[str | None, int]:
    """Where a Modbus TCP meter is: ``host:port`` of its own gateway (None: the bus's) and its unit id;
    `ValueError` naming the value and the forms an address takes."""
    if not (isinstance(address, str) and "/" in address):
        try:
            return None, unit_id(address, TCP_UNITS)
        except ValueError as exc:
            raise ValueError(f'{exc}, or "host:port/unit" for a meter behind its own gateway') from None
    host_port, _, unit = address.rpartition("/")
    if not _host_and_port(host_port):
        raise ValueError(f'{address!r}: {host_port!r} is not host:port; write "10.0.0.7:502/{unit}"')
    try:
        return host_port, unit_id(unit, TCP_UNITS)
    except ValueError as exc:
        raise ValueError(f"{address!r}: after the gateway, {exc}") from None


def _host_and_port(text: str) -> bool:
    """Whether `text` names a host and, if any, a port (as the driver reads it: ``host:port``, ``tcp://host:port``)."""
    parts = urlsplit(text if "//" in text else f"tcp://{text}")
    try:
        _ = parts.port  # a port that is no number, or beyond 65535, raises
    except ValueError:
        return False
    return bool(parts.hostname)


def _tcp_address(meter: MeterConfig) -> None:
    tcp_target(meter.address)


def _rtu_address(meter: MeterConfig) -> None:
    unit_id(meter.address, RTU_UNITS)


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
    check_address=_tcp_address,
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
    check_address=_rtu_address,
    bus_settings=ModbusRtuBusSettings,
    meter_settings=ModbusMeterSettings,
)
