"""Energy units as meters send them, and their exact conversion to Wh / varh.

The domain keeps every channel as an integer number of Wh (active) or varh
(reactive). Meters report kWh with three decimals, 0.1 kWh steps, Wh, MWh,
IEEE floats... This module is the one place that turns a decimal quantity in
one of those units into integer Wh/varh.

Rounding: a value finer than 1 Wh (e.g. ``1234.5678 kWh``) cannot be kept
exactly; it is rounded to the nearest Wh, ties to even (banker's rounding), so
that rounding errors do not drift in one direction over many readings.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from amr.core.domain import Channel

# Unit name → how many Wh (or varh) one unit is.
ACTIVE_UNITS: dict[str, int] = {"Wh": 1, "kWh": 1_000, "MWh": 1_000_000}
REACTIVE_UNITS: dict[str, int] = {"varh": 1, "kvarh": 1_000, "Mvarh": 1_000_000}
UNITS: dict[str, int] = {**ACTIVE_UNITS, **REACTIVE_UNITS}

ACTIVE_CHANNELS = frozenset({Channel.A_PLUS, Channel.A_MINUS})

# Enough significant digits that any 64-bit register times a scale times 10**6
# is multiplied exactly (the default context keeps only 28).
_PRECISION = 60


def unit_factor(unit: str) -> int:
    """Wh (or varh) per one `unit`; raises `ValueError` naming the known units."""
    try:
        return UNITS[unit]
    except KeyError:
        known = ", ".join(UNITS)
        raise ValueError(f"unknown energy unit {unit!r}; known units: {known}") from None


def unit_fits_channel(unit: str, channel: Channel) -> bool:
    """True when `unit` measures what `channel` counts: Wh-family for A+/A-, varh for R+/R-."""
    if channel in ACTIVE_CHANNELS:
        return unit in ACTIVE_UNITS
    return unit in REACTIVE_UNITS


def to_wh(value: Decimal, unit: str) -> int:
    """`value` in `unit` as integer Wh/varh, rounded half-even when finer than 1 Wh.

    Raises `ValueError` for an unknown unit or a value that is not finite.
    """
    factor = unit_factor(unit)
    if not value.is_finite():
        raise ValueError(f"energy value {value} is not a finite number")
    with decimal.localcontext() as context:
        context.prec = _PRECISION
        wh = (value * factor).to_integral_value(rounding=decimal.ROUND_HALF_EVEN)
    return int(wh)
