"""What IEC 62056-21 data sets mean as energy: OBIS energy registers to exact Wh/varh, and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from amr.core.domain import Channel, Values
from amr.errors import ProtocolError
from amr.protocols import obis
from amr.protocols.iec62056_21.datasets import DataSet
from amr.protocols.units import to_wh, unit_fits_channel


def numeric_values(data_sets: Iterable[DataSet]) -> dict[str, tuple[Decimal, str | None]]:
    """Address → (exact value, unit) for every data set whose value is a plain number.

    Keys are the addresses as sent (``1.8.0`` or ``1-0:1.8.0*255``). Data sets
    without an address, or with a value that is not a number (a serial number
    in hex, a date with placeholders), are left out. The same address twice
    with different values raises `ProtocolError`.
    """
    values: dict[str, tuple[Decimal, str | None]] = {}
    for data_set in data_sets:
        number = data_set.number
        if not data_set.address or number is None:
            continue
        entry = (number, data_set.unit)
        previous = values.setdefault(data_set.address, entry)
        if previous != entry:
            raise ProtocolError(
                f"data set {data_set.address} appears twice with different values: "
                f"{previous[0]} {previous[1]} and {number} {data_set.unit}"
            )
    return values


def energy_readings(
    data_sets: Iterable[DataSet], default_unit: str | None = None, errors: dict[str, str] | None = None
) -> dict[int, Values]:
    """Tariff → channel → Wh/varh from the energy data sets of a readout.

    OBIS 1.8.x/2.8.x/3.8.x/4.8.x (x = 0 total, 1..4 tariffs) map to A+/A-/R+/R-
    (see `amr.protocols.obis`); other data sets are ignored. Units kWh, Wh,
    MWh, kvarh, varh, Mvarh convert exactly to integer Wh/varh (finer values
    round half-even). A value without a unit takes `default_unit`, or raises
    `ProtocolError` when none is given, as do a non-numeric value, a unit that
    does not fit the channel, and two different values for one register.

    With `errors`, each register is judged on its own instead: a bad one is recorded there
    under its address and left out, one given twice with different values becomes None.
    """
    readings: dict[int, Values] = {}
    sources: dict[tuple[Channel, int], str] = {}
    for data_set in data_sets:
        try:
            energy = energy_value(data_set, default_unit)
        except ProtocolError as exc:
            if errors is None:
                raise
            errors[data_set.address] = str(exc)
            continue
        if energy is None:
            continue
        channel, tariff, wh = energy
        previous = readings.setdefault(tariff, {}).setdefault(channel, wh)
        if previous != wh:
            if errors is None:
                raise ProtocolError(
                    f"{channel.label} tariff {tariff} is given twice with different values: "
                    f"{sources[(channel, tariff)]} and {data_set.format()}"
                )
            errors[data_set.address] = f"{channel.label} tariff {tariff} sent twice: {previous} and {wh} Wh"
            readings[tariff][channel] = None
        sources.setdefault((channel, tariff), data_set.format())
    return readings


def energy_value(data_set: DataSet, default_unit: str | None = None) -> tuple[Channel, int, int] | None:
    """Channel, tariff and Wh/varh of one data set; None when it is not an energy register; raises
    `ProtocolError` as `energy_readings` does for a bad value or unit."""
    code = obis.parse_obis(data_set.address)
    register = None if code is None else obis.energy_register(code)
    if register is None:
        return None
    channel, tariff = register
    return channel, tariff, _energy_wh(data_set, channel, default_unit)


def _energy_wh(data_set: DataSet, channel: Channel, default_unit: str | None) -> int:
    number = data_set.number
    if number is None:
        raise ProtocolError(f"energy data set {data_set.address} has no number: {data_set.value!r}")
    unit = data_set.unit if data_set.unit is not None else default_unit
    if unit is None:
        raise ProtocolError(
            f"energy data set {data_set.address}({data_set.value}) has no unit and no "
            f"default unit was configured: cannot tell kWh from Wh"
        )
    if not unit_fits_channel(unit, channel):
        raise ProtocolError(
            f"data set {data_set.address} is {channel.label} but its unit is {unit!r}; "
            f"expected {'kWh, Wh or MWh' if channel.unit == 'kWh' else 'kvarh, varh or Mvarh'}"
        )
    return to_wh(number, unit)


def energy_data_sets(
    readings: Mapping[int, Mapping[Channel, int | None]], *, full_obis: bool = False
) -> list[DataSet]:
    """Data sets for a simulated readout: Wh/varh → ``1.8.0(001234.567*kWh)``.

    Values are written in kWh/kvarh with three decimals and at least six
    integer digits; None values are left out. `full_obis` writes
    ``1-0:1.8.0*255`` instead of ``1.8.0``.
    """
    data_sets: list[DataSet] = []
    for tariff in sorted(readings):
        for channel in Channel:
            wh = readings[tariff].get(channel)
            if wh is None:
                continue
            value = f"{Decimal(wh) / 1000:010.3f}"
            code = obis.energy_code(channel, tariff, full=full_obis)
            data_sets.append(DataSet(code, value, channel.unit))
    return data_sets
