"""The keys of an IEC 62056-21 bus and meter (light: no driver, no pyserial)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from amr.config import MeterSettings
from amr.drivers.serial_settings import SerialBusSettings

MODE_C_SPEEDS = (300, 600, 1200, 2400, 4800, 9600, 19200)  # the speeds an option select can name


class IecBusSettings(SerialBusSettings):
    """An IEC 62056-21 line: its serial settings and ``baud_switch``.

    ``baud_switch = true`` (the default) changes to the meter's offered speed after sign-on;
    ``false`` signs on and reads at ``baudrate``.
    """

    baud_switch: bool = True

    @field_validator("baud_switch")
    @classmethod
    def _fixed_speed_is_a_mode_c_speed(cls, value: bool, info: ValidationInfo) -> bool:
        baudrate = info.data.get("baudrate")
        if not value and baudrate not in MODE_C_SPEEDS:
            raise ValueError(
                f"baud_switch = false keeps the line at baudrate = {baudrate}, which an option "
                f"select cannot name; use one of {', '.join(map(str, MODE_C_SPEEDS))}"
            )
        return value


class IecMeterSettings(MeterSettings):
    """An IEC 62056-21 meter: ``password`` (P1) reads register by register in programming mode."""

    password: str | None = Field(None, repr=False)
