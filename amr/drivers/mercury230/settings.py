"""The keys of a Mercury 230 bus and meter (light: no driver, no pyserial)."""

from __future__ import annotations

from pydantic import Field

from amr.config import Duration, MeterSettings
from amr.drivers.serial_settings import SerialBusSettings


class MercuryBusSettings(SerialBusSettings):
    """A Mercury 230 line: the serial settings only."""


class MercuryMeterSettings(MeterSettings):
    """A Mercury 230 meter: its user-level ``password`` (six digits; the factory's 111111 when none);
    for its power profile, the meter ``constant`` (pulses per kWh; read from the meter's variant when
    none) and ``profile_depth`` (how far back its memory reaches; 4096 records of its period when none)."""

    password: str | None = Field(None, repr=False)
    constant: int | None = Field(None, gt=0, le=100_000)
    profile_depth: Duration | None = None
