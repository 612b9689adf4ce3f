"""Exact conversion of meter units to integer Wh/varh."""

from __future__ import annotations

from decimal import Decimal

import pytest

from amr.core.domain import Channel
from amr.protocols.units import to_wh, unit_factor, unit_fits_channel


@pytest.mark.parametrize(
    ("value", "unit", "wh"),
    [
        ("1234.567", "kWh", 1_234_567),
        ("1234567", "Wh", 1_234_567),
        ("1.234567", "MWh", 1_234_567),
        ("0.001", "kvarh", 1),
        ("12", "varh", 12),
        ("2.5", "Mvarh", 2_500_000),
        ("0.0025", "kWh", 2),  # 2.5 Wh → 2 (ties to even)
        ("0.0035", "kWh", 4),  # 3.5 Wh → 4 (ties to even)
        ("0.0036", "kWh", 4),
        ("18446744073709551615", "kWh", 18_446_744_073_709_551_615_000),  # no 28-digit limit
    ],
)
def test_to_wh(value: str, unit: str, wh: int) -> None:
    assert to_wh(Decimal(value), unit) == wh


def test_unknown_unit() -> None:
    with pytest.raises(ValueError, match="known units: Wh, kWh"):
        unit_factor("kW")


def test_not_finite() -> None:
    with pytest.raises(ValueError, match="not a finite"):
        to_wh(Decimal("NaN"), "kWh")


def test_units_fit_channels() -> None:
    assert unit_fits_channel("kWh", Channel.A_PLUS)
    assert unit_fits_channel("MWh", Channel.A_MINUS)
    assert unit_fits_channel("kvarh", Channel.R_PLUS)
    assert not unit_fits_channel("kvarh", Channel.A_PLUS)
    assert not unit_fits_channel("Wh", Channel.R_MINUS)
