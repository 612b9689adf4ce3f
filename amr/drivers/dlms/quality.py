"""DLMS instantaneous values (СПОДЭС): voltage, current, power per phase, power factor, frequency.

Class 3 registers, attribute 2 the value and attribute 3 the scaler-unit (value × 10^scaler in the
unit; Blue Book table of units: 27 W, 33 A, 35 V, 44 Hz, 255 none). OBIS codes (IEC 62056-61,
C = quantity and phase, D = 7 instantaneous): voltage L1/L2/L3 1.0.32/52/72.7.0.255, current
1.0.31/51/71.7.0.255, active power L1/L2/L3 1.0.21/41/61.7.0.255 and total 1.0.1.7.0.255, power
factor L1/L2/L3 1.0.33/53/73.7.0.255 and total 1.0.13.7.0.255, frequency 1.0.14.7.0.255.
A register the meter lacks (a single-phase meter has no L2, L3) is named in the sample's errors.
"""

from __future__ import annotations

from datetime import UTC, datetime

from amr.drivers.dlms import errors, values
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import MeterLink
from amr.drivers.quality import QualitySample
from amr.errors import ConnectError, DriverError, ReadTimeout

REGISTER = 3
OBIS = {
    "voltage_l1": "1.0.32.7.0.255", "voltage_l2": "1.0.52.7.0.255", "voltage_l3": "1.0.72.7.0.255",
    "current_l1": "1.0.31.7.0.255", "current_l2": "1.0.51.7.0.255", "current_l3": "1.0.71.7.0.255",
    "power_l1": "1.0.21.7.0.255", "power_l2": "1.0.41.7.0.255", "power_l3": "1.0.61.7.0.255",
    "power_total": "1.0.1.7.0.255",
    "power_factor_l1": "1.0.33.7.0.255", "power_factor_l2": "1.0.53.7.0.255", "power_factor_l3": "1.0.73.7.0.255",
    "power_factor_total": "1.0.13.7.0.255",
    "frequency": "1.0.14.7.0.255",
}
UNITS = {"voltage": 35, "current": 33, "power": 27, "frequency": 44}


def _expected_unit(quantity: str) -> int | None:
    if quantity.startswith("power_factor"):
        return None  # 255 "no unit", or left out by some meters
    return UNITS[quantity.split("_")[0]]


def read(session: Session, link: MeterLink, scalers: dict[tuple[str, str], values.ScalerUnit]) -> QualitySample:
    """Every instantaneous value the meter has; `scalers` caches scaler-units by (serial, OBIS)."""
    measured_at = datetime.now(UTC)
    found: dict[str, float] = {}
    problems: dict[str, str] = {}
    for quantity, obis in OBIS.items():
        try:
            scaler = scalers.get((link.serial, obis))
            if scaler is None:
                scaler = values.ScalerUnit.from_bytes(session.get(REGISTER, obis, 3))
                scalers[(link.serial, obis)] = scaler
            expected = _expected_unit(quantity)
            if expected is not None and scaler.unit != expected:
                raise errors.protocol(f"{obis}: unit {values.UNIT_NAMES.get(scaler.unit, scaler.unit)}, expected "
                                      f"{values.UNIT_NAMES.get(expected, expected)}", errors.VALUE, retryable=False)
            raw = values.decode(session.get(REGISTER, obis, 2)).value
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise errors.protocol(f"{obis}: value {raw!r} is not a number", errors.VALUE, retryable=False)
            found[quantity] = float(raw) * 10.0**scaler.scaler
        except (ConnectError, ReadTimeout):
            raise
        except DriverError as exc:
            problems[quantity] = str(exc)
    if not found:
        raise errors.device(f"no instantaneous value could be read: {next(iter(problems.values()), '')}",
                            errors.OBJECT_UNAVAILABLE)
    return QualitySample(link.serial, measured_at, found, problems)
