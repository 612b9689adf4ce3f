"""OBIS codes as they appear in IEC 62056-21 data sets, and which are energy registers.

An OBIS code (IEC 62056-61) names a quantity with six groups ``A-B:C.D.E*F``::

    1 - 0 : 1 . 8 . 0 * 255
    A   B   C   D   E   F
    |   |   |   |   |   +-- billing period: 255 (or absent) = current value;
    |   |   |   |   |       0..99 = a value stored at the end of a billing period
    |   |   |   |   +------ tariff: 0 = total, 1..4 = T1..T4 (more are possible)
    |   |   |   +---------- processing: 8 = time integral 1, a cumulative register
    |   |   +-------------- quantity: 1 = active import (A+), 2 = active export (A-),
    |   |                   3 = reactive import (R+), 4 = reactive export (R-)
    |   +------------------ channel: 0 = no channel specified; 1..64 channels
    +---------------------- medium: 1 = electricity, 0 = abstract (clock, ids)

Readouts often leave out A, B and F (``1.8.0``) and use letters for groups C
and D that are not numbers (``C.1.0`` meter number, ``F.F`` error register).
Older meters mark a stored billing-period value with ``*`` or ``&`` and two
digits (``1.8.0*01``); those are historic values, not the current register.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amr.core.domain import Channel

# quantity (group C) → channel, for processing (group D) 8
_CHANNEL_BY_QUANTITY: dict[str, Channel] = {
    "1": Channel.A_PLUS,
    "2": Channel.A_MINUS,
    "3": Channel.R_PLUS,
    "4": Channel.R_MINUS,
}
_QUANTITY_BY_CHANNEL: dict[Channel, str] = {v: k for k, v in _CHANNEL_BY_QUANTITY.items()}
CUMULATIVE = "8"  # group D: time integral 1, energy since the register was started
CURRENT = 255  # group F: the current value, not a billing-period value
ELECTRICITY = 1  # group A
MAX_TARIFF = 4  # tariffs this service keeps: 0 = total, 1..4

_OBIS = re.compile(
    r"""
    (?: (?P<a>\d{1,3}) - (?P<b>\d{1,3}) : )?   # A-B: (optional)
    (?P<c>[0-9A-Za-z]{1,3}) \.                  # C.
    (?P<d>[0-9A-Za-z]{1,3})                     # D
    (?: \. (?P<e>[0-9A-Za-z]{1,3}) )?           # .E (optional)
    (?: [*&] (?P<f>\d{1,3}) )?                  # *F or &F (optional)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class ObisCode:
    """An OBIS code as written in a data set; absent groups are None."""

    a: int | None
    b: int | None
    c: str
    d: str
    e: str | None
    f: int | None

    def __str__(self) -> str:
        """The code in the long form ``A-B:C.D.E*F``, absent groups left out."""
        text = f"{self.c}.{self.d}" + ("" if self.e is None else f".{self.e}")
        if self.a is not None:
            text = f"{self.a}-{self.b}:{text}"
        return text if self.f is None else f"{text}*{self.f}"


def parse_obis(address: str) -> ObisCode | None:
    """The OBIS code in a data-set address, or None when the address is not one."""
    match = _OBIS.fullmatch(address.strip())
    if match is None:
        return None
    a, b, f = match["a"], match["b"], match["f"]
    return ObisCode(
        a=None if a is None else int(a),
        b=None if b is None else int(b),
        c=match["c"],
        d=match["d"],
        e=match["e"],
        f=None if f is None else int(f),
    )


def energy_register(code: ObisCode) -> tuple[Channel, int] | None:
    """(channel, tariff) when `code` is a current cumulative A+/A-/R+/R- register.

    ``1.8.0`` → (A+, 0), ``2.8.3`` → (A-, 3), ``1-0:4.8.0*255`` → (R-, 0).
    Billing-period values (``1.8.0*01``), other media, tariffs above 4 and
    every other quantity give None.
    """
    if code.a not in (None, ELECTRICITY) or code.f not in (None, CURRENT):
        return None
    channel = _CHANNEL_BY_QUANTITY.get(code.c)
    if channel is None or code.d != CUMULATIVE or code.e is None or not code.e.isdigit():
        return None
    tariff = int(code.e)
    return (channel, tariff) if tariff <= MAX_TARIFF else None


def energy_code(channel: Channel, tariff: int, *, full: bool = False) -> str:
    """The OBIS code of a channel and tariff: ``1.8.0``, or ``1-0:1.8.0*255`` when `full`."""
    if not 0 <= tariff <= MAX_TARIFF:
        raise ValueError(f"tariff is 0 (total) or 1..{MAX_TARIFF}; got {tariff}")
    short = f"{_QUANTITY_BY_CHANNEL[channel]}.{CUMULATIVE}.{tariff}"
    return f"{ELECTRICITY}-0:{short}*{CURRENT}" if full else short
