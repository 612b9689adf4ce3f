"""Meters and metering points: register capacity, transformer ratios by date, service dates.

Hierarchy: object (объект) → metering point → meter. A meter replaced on a metering
point starts its own series; readings of two meters are never compared.

A meter's registers count secondary energy; the primary value is the register value
× CT ratio × VT ratio in force at that moment. Readings are stored at the primary
side, so validation divides by the ratio in force (exactly, with fractions) to
compare registers across a ratio change.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Protocol

WH_PER_KWH = 1000
WRAP_ZONE = Fraction(1, 10)
"""A wrap needs the previous register value in the top tenth of the register and the new one in the bottom tenth."""

Exact = int | Fraction


def exact(value: Fraction) -> Exact:
    """An int when `value` is whole (fast to compare), else the fraction."""
    return value.numerator if value.denominator == 1 else value


@dataclass(frozen=True, slots=True)
class Scale:
    """The register's limits at the primary side for one ratio version (Wh; ints where exact)."""

    ratio: Exact
    capacity: Exact  # the largest value the register can show, × ratio
    modulus: Exact  # the register wraps to zero here, × ratio
    wrap_top: Exact  # a wrap starts above this (primary)
    wrap_bottom: Exact  # and ends below this (primary)
    power_w: Exact | None  # rated power in W × ratio: the most the meter can pass


@dataclass(frozen=True, slots=True)
class RatioVersion:
    """A transformer ratio in force from `since` (UTC, inclusive) until the next version."""

    since: datetime | None  # None: since the beginning
    ct: Fraction
    vt: Fraction


_OWN_SLOTS = frozenset({"serial", "name", "object", "point", "accounts", "id"})
"""What `Meter.kind_maker` gives each meter of a kind; the other fields are the kind's."""
_Derived = tuple[tuple[RatioVersion, ...], tuple[Scale, ...], tuple[datetime, ...]]
_SHARED_SCALES: dict[tuple[int, int, Fraction | None, int], _Derived] = {}
"""Computed limits by meter kind and ratios tuple (its identity, checked: the tuple is kept alive here)."""


@dataclass(frozen=True, slots=True)
class Meter:
    """One physical meter on one metering point, as configured."""

    serial: str
    name: str
    object: str
    point: str
    model: str = ""
    accounts: tuple[str, ...] = ()
    digits: int = 6
    decimals: int = 2
    ratios: tuple[RatioVersion, ...] = (RatioVersion(None, Fraction(1), Fraction(1)),)
    tariffs: int = 1
    max_power_kw: Fraction | None = None
    installed: datetime | None = None
    removed: datetime | None = None
    id: int = 0
    _since: tuple[datetime, ...] = field(default=(), repr=False, compare=False)
    _scales: tuple[Scale, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        digits, decimals, power = self.digits, self.decimals, self.max_power_kw
        ratios = self.ratios
        key = (digits, decimals, power, id(ratios))  # meters of one kind share one ratios tuple
        shared = _SHARED_SCALES.get(key)
        if shared is not None and shared[0] is ratios:
            object.__setattr__(self, "_scales", shared[1])
            object.__setattr__(self, "_since", shared[2])
            return
        starts = tuple(r.since for r in self.ratios if r.since is not None)
        object.__setattr__(self, "_since", starts)
        scales = tuple(_scale(digits, decimals, power, exact(v.ct), exact(v.vt)) for v in self.ratios)
        object.__setattr__(self, "_scales", scales)
        if len(_SHARED_SCALES) >= 4096:
            _SHARED_SCALES.clear()
        _SHARED_SCALES[key] = (ratios, scales, starts)

    def take_id(self, meter_id: int) -> Meter:
        """This meter with its store id: given in place (no copy) while it has none (id 0, as the
        configuration makes it: nothing has hashed or compared it by id yet), else a copy."""
        if self.id == 0:
            object.__setattr__(self, "id", meter_id)
            return self
        return self if self.id == meter_id else self.with_id(meter_id)

    def with_id(self, meter_id: int) -> Meter:
        """This meter with its store id (a copy of the computed fields, without computing them again)."""
        return self.kind_maker()(self.serial, self.name, self.object, self.point, self.accounts, meter_id)

    def kind_maker(self) -> MeterMaker:
        """A function making meters of this one's kind (model, register, ratios, dates: computed once,
        shared), each with its own serial, name, object, point, accounts and store id."""
        shared = [(slot, getattr(self, slot)) for slot in self.__slots__ if slot not in _OWN_SLOTS]
        put = object.__setattr__

        def make(serial: str, name: str, object_name: str, point: str, accounts: tuple[str, ...],
                 meter_id: int) -> Meter:
            clone: Meter = object.__new__(Meter)
            for slot, value in shared:
                put(clone, slot, value)
            put(clone, "serial", serial)
            put(clone, "name", name)
            put(clone, "object", object_name)
            put(clone, "point", point)
            put(clone, "accounts", accounts)
            put(clone, "id", meter_id)
            return clone

        return make

    def scale_at(self, ts: datetime) -> Scale:
        """The register's limits at the primary side in force at `ts`."""
        if len(self._scales) == 1:
            return self._scales[0]
        return self._scales[self._version_index(ts)]

    @property
    def modulus_wh(self) -> int:
        """The register wraps to zero at this many Wh (10^digits kWh)."""
        return int(10**self.digits) * WH_PER_KWH

    @property
    def max_register_wh(self) -> Fraction:
        """The largest value the register can show, in Wh (e.g. 999999.99 kWh)."""
        return Fraction(self.modulus_wh) - Fraction(WH_PER_KWH, 10**self.decimals)

    def ratio_at(self, ts: datetime) -> Fraction:
        """CT × VT in force at `ts`."""
        return Fraction(self.scale_at(ts).ratio)

    def ratio_version_at(self, ts: datetime) -> RatioVersion:
        """The ratio version in force at `ts` (versions are sorted by `since`)."""
        return self.ratios[self._version_index(ts)]

    def _version_index(self, ts: datetime) -> int:
        index = bisect.bisect_right(self._since, ts)
        if self.ratios[0].since is None:
            return index
        return max(index - 1, 0)

    def register_value(self, primary_wh: int, ts: datetime) -> Fraction:
        """The secondary register value (Wh) behind a primary value at `ts`."""
        return Fraction(primary_wh) / self.ratio_at(ts)

    def max_energy_wh(self, hours: Fraction) -> Fraction | None:
        """The most secondary energy the meter can pass in `hours` at its rated power."""
        if self.max_power_kw is None:
            return None
        return self.max_power_kw * WH_PER_KWH * hours

    def in_service(self, ts: datetime) -> bool:
        """True when `ts` lies within the installation and removal dates."""
        if self.installed is not None and ts < self.installed:
            return False
        return not (self.removed is not None and ts > self.removed)


@functools.lru_cache(maxsize=4096)
def _scale(digits: int, decimals: int, max_power_kw: Fraction | None, ct: Exact, vt: Exact) -> Scale:
    """The limits of a register at one ratio (cached: thousands of meters share a few kinds; whole
    ratios are given as ints, quick to hash)."""
    ratio = Fraction(ct) * vt
    modulus = Fraction(int(10**digits) * WH_PER_KWH)
    near = modulus * WRAP_ZONE
    top = modulus - Fraction(WH_PER_KWH, 10**decimals)
    power = None if max_power_kw is None else exact(max_power_kw * WH_PER_KWH * ratio)
    return Scale(
        ratio=exact(ratio),
        capacity=exact(top * ratio),
        modulus=exact(modulus * ratio),
        wrap_top=exact((modulus - near) * ratio),
        wrap_bottom=exact(near * ratio),
        power_w=power,
    )


class MeterMaker(Protocol):
    """Makes a meter of one kind with its own serial, name, object, point, accounts and store id."""

    def __call__(self, serial: str, name: str, object_name: str, point: str, accounts: tuple[str, ...],
                 meter_id: int) -> Meter:
        """The new meter."""
        ...

