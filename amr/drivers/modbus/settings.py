"""The keys of a Modbus bus and meter (light: no driver, no pymodbus)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from amr.config import BusSettings, MeterSettings
from amr.drivers.serial_settings import SerialBusSettings
from amr.protocols.modbus_map import PROFILES, register_count


class ModbusBusSettings(BusSettings):
    """What both Modbus kinds take: ``concurrency``, ``max_registers``."""

    concurrency: int = Field(16, ge=1, le=10000)  # meters read at once over TCP; a serial line reads one
    max_registers: int = Field(125, ge=1, le=125)  # registers one read may ask for (125: the protocol's limit)

    @property
    def reads_at_once(self) -> int:
        """``concurrency``: meters of a TCP network read at once."""
        return self.concurrency


class ModbusTcpBusSettings(ModbusBusSettings):
    """A Modbus TCP network: ``concurrency``, ``max_registers``."""


class ModbusRtuBusSettings(ModbusBusSettings, SerialBusSettings):
    """A Modbus RTU line: its serial settings, ``concurrency``, ``max_registers``."""


class RegisterConfig(BaseModel):
    """One register of a meter's own map.

    Example: ``{ channel = "a_plus", function = 4, address = 0x48, type = "float32", unit = "kWh" }``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["a_plus", "a_minus", "r_plus", "r_minus"]
    tariff: int = Field(0, ge=0, le=4)
    function: Literal[3, 4] = 3
    address: int = Field(ge=0, le=0xFFFF)
    base: Literal[0, 1] = 0
    type: Literal["uint16", "uint32", "uint64", "int32", "int64", "float32", "float64"]
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    scale: Decimal = Field(Decimal(1), gt=0)
    unit: Literal["Wh", "kWh", "MWh", "varh", "kvarh", "Mvarh"] = "kWh"
    decimals: int | None = Field(None, ge=0, le=6)
    count: int | None = Field(None, ge=1, le=4, description="registers spanned; checked against the type")

    @model_validator(mode="after")
    def _count_fits_type(self) -> RegisterConfig:
        needed = register_count(self.type)
        if self.count is not None and self.count != needed:
            raise ValueError(f"type {self.type} spans {needed} register(s), not count = {self.count}")
        return self


class ModbusMeterSettings(MeterSettings):
    """A Modbus meter: a built-in ``profile``, its own ``registers``, or both; ``max_gap``."""

    profile: str | None = None
    registers: list[RegisterConfig] = Field(default_factory=list)
    max_gap: int | None = Field(None, ge=0, le=125)  # unused registers one read may span

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, profile: str | None) -> str | None:
        if profile is not None and profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(sorted(PROFILES))}")
        return profile

    @model_validator(mode="after")
    def _has_a_map(self) -> ModbusMeterSettings:
        if self.profile is None and not self.registers:
            raise ValueError(
                f"a Modbus meter needs profile = one of {', '.join(sorted(PROFILES))} or a registers map"
            )
        return self
