"""The power-quality capability: drivers of meters that measure instantaneous values read them.

A driver that can implements `QualityReader` and its spec declares ``"quality"``. Values are
floats in SI units (V, A, W, Hz; power factor without unit), kept apart from energy: they never
go through the validation of readings. Names (`QUANTITIES`) are the columns of the store's
``quality_samples`` table; a meter reports those it measures (a single-phase meter only L1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from amr.config import MeterConfig
from amr.core.quantities import QUANTITIES, UNITS, unit_of


@dataclass(frozen=True, slots=True)
class QualitySample:
    """Instantaneous values of one meter at `measured_at` (UTC); `errors` names what could not be read."""

    serial: str
    measured_at: datetime
    values: dict[str, float]
    errors: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class QualityReader(Protocol):
    """A poll driver that reads a meter's instantaneous values."""

    def has_quality(self, meter: MeterConfig) -> bool:
        """True when this meter (its model, its register map) has instantaneous values the driver reads."""
        ...

    async def read_quality(self, meter: MeterConfig) -> QualitySample:
        """The meter's instantaneous values now; `DriverError` when none could be read."""
        ...


__all__ = ["QUANTITIES", "UNITS", "QualityReader", "QualitySample", "unit_of"]
