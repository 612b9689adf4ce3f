"""DLMS settings of a bus and of a meter (light: no driver, no library), and the merge of the two.

A bus table carries the defaults of every meter on it (``[buses.dlms]``), a meter may
override any of them and adds its address and OBIS overrides (``[meters.dlms]``)::

    [[buses]]
    name = "rs485-dlms"
    kind = "dlms-hdlc"                     # or "dlms-tcp"
    url = "socket://10.0.0.5:4001"         # dlms-tcp: "tcp://10.0.0.9:4059"
    timeout = "3s"
    [buses.dlms]
    client = 32                            # 16 public, 32 reader (LLS), 48 configurator (HLS)
    authentication = "lls"                 # "none", "lls" or "hls-gmac"

    [[meters]]
    serial = "012345678"
    bus = "rs485-dlms"
    address = 145                          # HDLC physical address
    password = "12345678"                  # LLS password (never logged)
    [meters.dlms]
    obis = { a_minus = "1.0.2.8.0.255", clock = "0.0.1.0.0.255" }

The loader validates these keys through `DlmsTcpBusSettings` / `DlmsHdlcBusSettings` and
`DlmsMeterSettings` (named on the specs); the driver reads them with ``.of(bus)`` /
``.of(meter)`` and merges them with `meter_link`. Secrets (``password``,
``authentication_key``, ``block_cipher_key``) are `SecretStr`: they never appear in a
``repr``, a log line or an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from amr.config import BusSettings, Duration, MeterConfig, MeterSettings
from amr.core.domain import Channel
from amr.drivers.serial_settings import SerialBusSettings
from amr.errors import ConfigError

Authentication = Literal["none", "lls", "hls-gmac"]
Transport = Literal["wrapper", "hdlc"]
_OBIS = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_HEX = re.compile(r"^[0-9A-Fa-f]*$")
CLOCK = "clock"
CLOCK_OBIS = "0.0.1.0.0.255"
_CHANNEL_C = {Channel.A_PLUS: 1, Channel.A_MINUS: 2, Channel.R_PLUS: 3, Channel.R_MINUS: 4}


def register_key(channel: Channel, tariff: int) -> str:
    """The name of a register in ``obis`` overrides and in `MeterValues.errors`: ``a_plus``, ``a_plus.t2``."""
    return channel.value if tariff == 0 else f"{channel.value}.t{tariff}"


def default_obis(channel: Channel, tariff: int) -> str:
    """The СПОДЭС register of a channel and tariff: A+ total 1.0.1.8.0.255, A+ tariff 2 1.0.1.8.2.255."""
    return f"1.0.{_CHANNEL_C[channel]}.8.{tariff}.255"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [str(key) for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(f"unknown key {', '.join(unknown)}; the table takes {', '.join(cls.model_fields)}")
        return data


def _hex_secret(value: object, size: int, name: str) -> object:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is None:
        return None
    if not isinstance(text, str) or not _HEX.match(text) or len(text) != 2 * size:
        raise ValueError(f"{name} is {size} bytes written as {2 * size} hex digits")
    return value


class DlmsSecurity(_Model):
    """Who the head-end is to the meter: the client SAP, its authentication and its keys."""

    client: int = Field(16, ge=1, le=127, description="client SAP: 16 public, 32 reader, 48 configurator")
    authentication: Authentication = "none"
    password: SecretStr | None = Field(None, repr=False)
    authentication_key: SecretStr | None = Field(None, repr=False)
    block_cipher_key: SecretStr | None = Field(None, repr=False)
    system_title: str = Field("414D523030303031", description="the client's system title, 8 bytes in hex")

    @field_validator("authentication_key", "block_cipher_key", mode="before")
    @classmethod
    def _key(cls, value: object) -> object:
        return _hex_secret(value, 16, "a key")

    @field_validator("system_title")
    @classmethod
    def _title(cls, value: str) -> str:
        _hex_secret(value, 8, "system_title")
        return value

    @model_validator(mode="after")
    def _complete(self) -> DlmsSecurity:
        if isinstance(self, DlmsBusTable):
            return self  # bus defaults: each meter may bring its own password or keys
        if self.authentication == "lls" and self.password is None:
            raise ValueError('authentication = "lls" needs a password')
        if self.authentication == "hls-gmac" and (self.authentication_key is None or self.block_cipher_key is None):
            raise ValueError('authentication = "hls-gmac" needs authentication_key and block_cipher_key')
        return self


class DlmsBusTable(DlmsSecurity):
    """``[buses.dlms]``: the transport and the defaults every meter of the bus starts from."""

    transport: Transport | None = None  # None: "wrapper" on a dlms-tcp bus; a dlms-hdlc bus is HDLC
    max_info_length: int = Field(128, ge=32, le=2030, description="HDLC: longest information field proposed")
    window: int = Field(1, ge=1, le=7, description="HDLC: frames proposed per window")
    max_pdu_size: int = Field(1024, ge=64, le=65535)
    inter_frame_timeout: float | None = Field(None, gt=0, description="seconds; default: the bus's timeout")


class DlmsMeterTable(_Model):
    """``[meters.dlms]``: one meter's address, its own security (overriding the bus's) and OBIS overrides."""

    logical_device: int = Field(1, ge=1, le=0x3FFF)
    physical_address: int | None = Field(None, ge=0, le=0x3FFF)
    address_size: Literal[1, 2, 4] | None = None  # HDLC server address bytes; default: 1 without a
    # physical address, 2 when both parts fit in 7 bits, else 4
    host: str | None = None  # "host:port": a meter with its own address on a dlms-tcp bus
    client: int | None = Field(None, ge=1, le=127)
    authentication: Authentication | None = None
    password: SecretStr | None = Field(None, repr=False)
    authentication_key: SecretStr | None = Field(None, repr=False)
    block_cipher_key: SecretStr | None = Field(None, repr=False)
    system_title: str | None = None
    obis: dict[str, str] = {}

    @field_validator("obis")
    @classmethod
    def _obis(cls, value: dict[str, str]) -> dict[str, str]:
        known = {CLOCK} | {register_key(c, t) for c in Channel for t in range(5)}
        for key, code in value.items():
            if key not in known:
                raise ValueError(f"obis key {key!r} is not one of a_plus, a_plus.t1..t4 (and a_minus, r_plus, "
                                 f"r_minus alike) or clock")
            if not _OBIS.match(code) or any(int(part) > 255 for part in code.split(".")):
                raise ValueError(f"obis.{key} = {code!r} is not an OBIS code such as 1.0.1.8.0.255")
        return value

    @model_validator(mode="after")
    def _fits(self) -> DlmsMeterTable:
        if self.address_size == 1 and self.physical_address is not None:
            raise ValueError("a 1-byte HDLC server address has no physical address; use address_size = 2 or 4")
        if self.address_size == 2 and max(self.logical_device, self.physical_address or 0) > 0x7F:
            raise ValueError("a 2-byte HDLC server address holds 7-bit parts; use address_size = 4")
        return self


@dataclass(frozen=True, slots=True, repr=False)
class MeterLink:
    """Everything needed to talk to one meter: bus defaults merged with the meter's own settings."""

    serial: str
    security: DlmsSecurity
    meter: DlmsMeterTable

    @property
    def address_size(self) -> int:
        """Bytes of the HDLC server address."""
        if self.meter.address_size is not None:
            return self.meter.address_size
        if self.meter.physical_address is None:
            return 1
        return 2 if max(self.meter.logical_device, self.meter.physical_address) <= 0x7F else 4

    def obis(self, key: str, default: str) -> str:
        """The meter's OBIS code for `key`, else `default`."""
        return self.meter.obis.get(key, default)

    def __repr__(self) -> str:
        return f"MeterLink({self.serial!r}, client={self.security.client}, {self.security.authentication})"


class DlmsTcpBusSettings(BusSettings):
    """A ``dlms-tcp`` bus: ``concurrency`` (meters read at once, a connection each) and ``[buses.dlms]``."""

    concurrency: int = Field(16, ge=1, le=10000)
    dlms: DlmsBusTable = DlmsBusTable()

    @property
    def reads_at_once(self) -> int:
        """``concurrency``: a TCP bus reads its meters at once, one connection each."""
        return self.concurrency


class DlmsHdlcBusSettings(SerialBusSettings):
    """A ``dlms-hdlc`` line: its serial settings and ``[buses.dlms]`` (HDLC only)."""

    dlms: DlmsBusTable = DlmsBusTable()

    @model_validator(mode="after")
    def _hdlc(self) -> DlmsHdlcBusSettings:
        if self.dlms.transport == "wrapper":
            raise ValueError('a dlms-hdlc bus is a serial line, always HDLC; the TCP wrapper is kind = "dlms-tcp"')
        return self


class DlmsMeterSettings(MeterSettings):
    """A DLMS meter: its LLS ``password`` (unless ``[meters.dlms]`` gives one), ``[meters.dlms]`` and
    ``profile_depth`` (how far back its load profile reaches; 120 days when none)."""

    password: SecretStr | None = Field(None, repr=False)
    dlms: DlmsMeterTable = DlmsMeterTable()
    profile_depth: Duration | None = None


def meter_link(bus: DlmsBusTable, meter: MeterConfig) -> MeterLink:
    """A meter's `MeterLink`: the bus's defaults, overridden by the meter's table.

    ``meter.address`` is the physical address and the meter's ``password`` the LLS password
    unless its table gives them; `ConfigError` naming the key when they don't fit.
    """
    own = DlmsMeterSettings.of(meter)
    try:
        settings = meter_table(meter)
        merged: dict[str, Any] = bus.model_dump(include=set(DlmsSecurity.model_fields))
        merged.update(settings.model_dump(include=set(DlmsSecurity.model_fields), exclude_none=True))
        if settings.password is None and own.password is not None:
            merged["password"] = own.password
        return MeterLink(meter.serial, DlmsSecurity.model_validate(merged), settings)
    except ValidationError as exc:
        raise ConfigError(f"meter {meter.serial}: dlms: {_first(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"meter {meter.serial}: dlms: {exc}") from None


def meter_table(meter: MeterConfig) -> DlmsMeterTable:
    """The meter's ``[meters.dlms]`` table, with its ``address`` as the HDLC physical address when the
    table gives none; `ValueError` naming the address and the fix."""
    settings = DlmsMeterSettings.of(meter).dlms
    if settings.physical_address is not None or meter.address in (None, ""):
        return settings
    text = str(meter.address).strip()
    if not (text.isascii() and text.isdigit() and int(text) <= 0x3FFF):
        raise ValueError(f"{meter.address!r} is not an HDLC physical address; write a whole number 0..16383 "
                         "(e.g. address = 145), or give dlms.physical_address")
    try:
        return DlmsMeterTable.model_validate({**settings.model_dump(), "physical_address": int(text)})
    except ValidationError as exc:  # it does not fit the server address's size
        raise ValueError(f"{meter.address!r}: {_first(exc).removeprefix('Value error, ')}") from None


def _first(exc: ValidationError) -> str:
    error = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
