"""The keys of a Mercury 230 bus and meter (light: no driver, no pyserial)."""

from __future__ import annotations

from pydantic import Field

from amr.config import MeterSettings
from amr.drivers.serial_settings import SerialBusSettings


class MercuryBusSettings(SerialBusSettings):
    """A Mercury 230 line: the serial settings only."""


class MercuryMeterSettings(MeterSettings):
    """A Mercury 230 meter: its user-level ``password`` (six digits; the factory's 111111 when none)."""

    password: str | None = Field(None, repr=False)
