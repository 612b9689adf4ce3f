"""What one lease covers: a whole serial line, or a group of a TCP bus's devices.

* A serial line (Modbus RTU, Mercury 230, IEC 62056-21, also behind a ``socket://`` RS-485
  converter) carries one transaction at a time and its converter often takes one client: it is
  leased as a whole, key = the bus's name.
* A bus whose meters are separate TCP devices (Modbus TCP: ``address = "host:port/unit"``, or
  the bus's own ``url`` for meters addressed by unit id) may be spread: its devices, in the
  order of their ``host:port``, are packed into groups of at most ``[collector] lease_group``
  meters, a device never split (a gateway's RS-485 side is one line too). Key = the bus's name,
  and when the bus makes more than one group, ``bus/host:port`` of the group's first device.

Every collector computes the same units from the same configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from amr.config import BusConfig, MeterConfig


@dataclass(frozen=True, slots=True)
class LeaseUnit:
    """One lease: its key, its bus, the serials of the meters it covers."""

    key: str
    bus: str
    meters: tuple[str, ...]


def device_of(bus: BusConfig, meter: MeterConfig) -> str:
    """The TCP device a meter of a spreadable bus is reached through: its own ``host:port`` or the bus's URL."""
    if isinstance(meter.address, str) and "/" in meter.address:
        return meter.address.rpartition("/")[0]
    return bus.url


def lease_units(
    buses: Mapping[str, BusConfig],
    meters: Iterable[MeterConfig],
    serial_line: Mapping[str, bool],
    group: int,
) -> list[LeaseUnit]:
    """The units of the polled `meters` (each with a ``bus``); `serial_line`: bus name → whole bus."""
    by_bus: dict[str, list[MeterConfig]] = {}
    for meter in meters:
        by_bus.setdefault(meter.bus or "", []).append(meter)
    units: list[LeaseUnit] = []
    for name in sorted(by_bus):
        bus, members = buses[name], by_bus[name]
        if serial_line[name]:
            units.append(LeaseUnit(name, name, tuple(m.serial for m in members)))
            continue
        devices: dict[str, list[str]] = {}
        for meter in members:
            devices.setdefault(device_of(bus, meter), []).append(meter.serial)
        groups: list[tuple[str, list[str]]] = []
        for device in sorted(devices):
            if not groups or len(groups[-1][1]) + len(devices[device]) > group:
                groups.append((device, []))
            groups[-1][1].extend(devices[device])
        if len(groups) == 1:
            units.append(LeaseUnit(name, name, tuple(groups[0][1])))
        else:
            units += [LeaseUnit(f"{name}/{first}", name, tuple(serials)) for first, serials in groups]
    return units
