"""Instantaneous values of a virtual meter: per-phase voltage, current and power, frequency, power factor.

Derived from the energy model (`simulators.model.VirtualMeter.power_kw`): the net active power is
split evenly over three phases, the power factor follows the meter's tan φ, the voltage wanders a
little around 230 V (or stays at ``faults.voltage``) and the frequency around 50 Hz. An open load
switch gives no current and no power; the voltage stays (the meter measures on the grid side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from simulators.model import VirtualMeter

NOMINAL_VOLTAGE = 230.0
NOMINAL_FREQUENCY = 50.0


@dataclass(frozen=True, slots=True)
class Instant:
    """What a meter measures at one moment (SI units; power in W, signed: negative is export)."""

    voltage: tuple[float, float, float]
    current: tuple[float, float, float]
    power: tuple[float, float, float]
    power_total: float
    power_factor: tuple[float, float, float]
    power_factor_total: float
    frequency: float


def instant(meter: VirtualMeter, now: datetime | None = None) -> Instant:
    """The meter's instantaneous values at `now`."""
    now = now or datetime.now(UTC)
    load, solar = meter.power_kw(now)
    total = (load - solar) * 1000
    wobble = math.sin(now.timestamp() / 60)  # slow, repeatable drift within a few volts / tens of mHz
    held = meter.faults.voltage
    volts = tuple(held if held is not None else NOMINAL_VOLTAGE + 2.0 * wobble + phase for phase in (0.0, -0.7, 0.9))
    pf = round(1 / math.sqrt(1 + meter.tan_phi**2), 3) if total else 1.0
    phase_power = [total / 3] * 3
    current = tuple(abs(p) / (v * pf) if v else 0.0 for p, v in zip(phase_power, volts, strict=True))
    return Instant(
        voltage=(volts[0], volts[1], volts[2]),
        current=(current[0], current[1], current[2]),
        power=(phase_power[0], phase_power[1], phase_power[2]),
        power_total=total,
        power_factor=(pf, pf, pf),
        power_factor_total=pf,
        frequency=NOMINAL_FREQUENCY + 0.02 * wobble,
    )


def eastron_words(meter: VirtualMeter, profile: str, now: datetime | None = None) -> dict[int, int]:
    """The instantaneous input registers of an Eastron SDM630 / SDM120 (`amr.protocols.modbus_map.eastron_instant`);
    the power factor signed as the maker's document does: negative for an inductive load."""
    from amr.protocols.modbus_map import eastron_instant

    values = instant(meter, now)
    sign = -1.0 if meter.tan_phi > 0 else 1.0
    every = {
        **{f"voltage_l{n + 1}": values.voltage[n] for n in range(3)},
        **{f"current_l{n + 1}": values.current[n] for n in range(3)},
        **{f"power_l{n + 1}": values.power[n] for n in range(3)},
        **{f"power_factor_l{n + 1}": sign * values.power_factor[n] for n in range(3)},
        "power_total": values.power_total,
        "power_factor_total": sign * values.power_factor_total,
        "frequency": values.frequency,
    }
    kept = eastron_instant.PROFILES.get(profile, ())
    return eastron_instant.encode({q: v for q, v in every.items() if q in kept})


def mercury_answer(meter: VirtualMeter, address: int, bwri: int, now: datetime | None = None) -> bytes | None:
    """The answer to Mercury 230 command 08 11 [BWRI] (`amr.protocols.mercury230_instant`); None for a BWRI
    the meter does not serve."""
    from amr.protocols import mercury230_instant as aux

    quantity = aux.quantity_of(bwri)
    if quantity is None:
        return None
    values = instant(meter, now)
    by_name = {
        **{f"voltage_l{n + 1}": values.voltage[n] for n in range(3)},
        **{f"current_l{n + 1}": values.current[n] for n in range(3)},
        **{f"power_l{n + 1}": values.power[n] for n in range(3)},
        **{f"power_factor_l{n + 1}": values.power_factor[n] for n in range(3)},
        "power_total": values.power_total,
        "power_factor_total": values.power_factor_total,
        "frequency": values.frequency,
    }
    return aux.encode_answer(address, quantity, by_name[quantity])
