"""Exact energy arithmetic between two readings of one register.

Values are primary-side Wh; the register counts secondary Wh. Between two readings the
energy is the register difference (plus one modulus when the register wrapped through
zero) times the ratio in force at the start of the interval, so a transformer change
at a reading's timestamp applies from that reading on.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

from amr.core.meters import Meter


def register_delta(
    meter: Meter, prev_ts: datetime, prev_wh: int, ts: datetime, wh: int, wrapped: bool
) -> Fraction:
    """Secondary register difference between two readings, Wh (counting one wrap if `wrapped`)."""
    delta = meter.register_value(wh, ts) - meter.register_value(prev_wh, prev_ts)
    if wrapped:
        delta += meter.modulus_wh
    return delta


def consumption_wh(
    meter: Meter, prev_ts: datetime, prev_wh: int, ts: datetime, wh: int, wrapped: bool
) -> int:
    """Primary energy between two readings, Wh; exact, rounded half-even only when ratios differ."""
    scale = meter.scale_at(ts)
    if meter.scale_at(prev_ts) is scale and isinstance(scale.modulus, int):
        return wh - prev_wh + (scale.modulus if wrapped else 0)
    delta = register_delta(meter, prev_ts, prev_wh, ts, wh, wrapped) * meter.ratio_at(prev_ts)
    return round(delta)


def hours_between(start: datetime, end: datetime) -> Fraction:
    """Exact hours between two instants."""
    span = end - start
    micros = (span.days * 86400 + span.seconds) * 1_000_000 + span.microseconds
    return Fraction(micros, 3_600_000_000)
