"""Power-quality quantities: names (the columns of ``quality_samples``) and their SI units."""

from __future__ import annotations

QUANTITIES: tuple[str, ...] = (
    "voltage_l1", "voltage_l2", "voltage_l3",
    "current_l1", "current_l2", "current_l3",
    "power_l1", "power_l2", "power_l3", "power_total",
    "power_factor_l1", "power_factor_l2", "power_factor_l3", "power_factor_total",
    "frequency",
)
UNITS = {"voltage": "V", "current": "A", "power": "W", "power_factor": "", "frequency": "Hz"}


def unit_of(quantity: str) -> str:
    """The unit of a quantity name (``voltage_l2`` → ``V``)."""
    base = quantity.rsplit("_", 1)[0] if quantity != "frequency" else quantity
    return UNITS.get(base, UNITS.get(quantity, ""))
