"""A spec declares ``relay`` / ``quality`` exactly when its driver implements `RelaySwitch` / `QualityReader`."""

from __future__ import annotations

import pytest

from amr.drivers.quality import QualityReader, unit_of
from amr.drivers.registry import PROTOCOLS
from amr.drivers.relay import RelaySwitch


@pytest.mark.parametrize("kind", sorted(PROTOCOLS))
def test_declared_capabilities_match_the_driver(kind: str) -> None:
    spec = PROTOCOLS[kind]
    driver = spec.driver_class()
    assert ("relay" in spec.capabilities) == issubclass(driver, RelaySwitch)
    assert ("quality" in spec.capabilities) == issubclass(driver, QualityReader)


def test_relay_is_dlms_only_and_quality_is_dlms_mercury_and_modbus() -> None:
    relay = {k for k, s in PROTOCOLS.items() if "relay" in s.capabilities}
    quality = {k for k, s in PROTOCOLS.items() if "quality" in s.capabilities}
    assert relay == {"dlms-tcp", "dlms-hdlc"}
    assert quality == {"dlms-tcp", "dlms-hdlc", "mercury230", "modbus-tcp", "modbus-rtu"}


def test_units_of_quantities() -> None:
    assert [unit_of(q) for q in ("voltage_l3", "current_l1", "power_total", "power_factor_l2", "frequency")] == [
        "V", "A", "W", "", "Hz"]
