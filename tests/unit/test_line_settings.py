"""The pause a serial line keeps before each request follows the line's speed unless the bus sets one."""

from __future__ import annotations

import pytest

from amr.config import BusConfig
from amr.drivers.iec62056_21.driver import Iec62056Driver
from amr.drivers.serial_line import LineSettings


def bus(**fields: object) -> BusConfig:
    return BusConfig.model_validate({"name": "line", "kind": "modbus-rtu", "url": "/dev/ttyUSB0", **fields})


@pytest.mark.parametrize(
    ("baudrate", "pause_ms"),
    [(1200, 32.083), (9600, 4.010), (19200, 2.005), (38400, 1.75), (115200, 1.75)],
)
def test_default_pause_is_the_three_and_a_half_character_gap(baudrate: int, pause_ms: float) -> None:
    settings = LineSettings.from_bus(bus(baudrate=baudrate))
    assert settings.frame_pause * 1000 == pytest.approx(pause_ms, abs=0.001)


def test_a_written_pause_overrides_the_gap() -> None:
    assert LineSettings.from_bus(bus(baudrate=19200, frame_pause="20ms")).frame_pause == pytest.approx(0.02)
    assert LineSettings.from_bus(bus(baudrate=19200, frame_pause=0)).frame_pause == 0


def test_iec_gap_follows_the_sign_on_speed_not_the_bus_default() -> None:
    driver = Iec62056Driver(bus(kind="iec62056-21"))
    assert driver.line.settings.baudrate == 300
    assert driver.line.settings.frame_pause == pytest.approx(3.5 * 11 / 300)
