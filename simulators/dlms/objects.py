"""The COSEM objects of a simulated СПОДЭС meter: one table, OBIS → interface class and attributes.

Energy registers (class 3, version 0): A+ 1.0.1.8.0.255, A- 1.0.2.8.0.255, R+ 1.0.3.8.0.255,
R- 1.0.4.8.0.255 and their tariffs 1.0.C.8.1..4.255; attribute 2 the value (double-long-unsigned
in Wh or varh, from `simulators.model.VirtualMeter.registers`), attribute 3 the scaler-unit
(scaler 0, unit 30 Wh or 32 varh). The clock 0.0.1.0.0.255 (class 8, version 0): attribute 2 the
date-time (writable), 3 the time zone in minutes, 9 the clock base (1: the mains frequency).
The association 0.0.40.0.0.255 (class 15, version 1): attribute 2 the object list, the long
answer a client reads through GET blocks.

The load profile 1.0.99.1.0.255 (class 7) is added by `simulators.dlms.profile`; still to come: the
event logs 0.0.99.98.x.255 (class 7). The disconnect control 0.0.96.3.10.255 (class 70) and the
instantaneous values are added by `simulators.dlms.operations`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from amr.core.domain import CHANNELS, Values
from simulators.dlms import axdr

Obis = tuple[int, int, int, int, int, int]

REGISTER, CLOCK, PROFILE_GENERIC, ASSOCIATION_LN, DISCONNECT_CONTROL = 3, 8, 7, 15, 70
UNIT_WH, UNIT_VARH = 30, 32
CLOCK_OBIS: Obis = (0, 0, 1, 0, 0, 255)
ASSOCIATION_OBIS: Obis = (0, 0, 40, 0, 0, 255)


@dataclass(frozen=True, slots=True)
class Reading:
    """What a GET sees of one meter at one moment: registers by tariff (0: total) and the meter's clock."""

    registers: dict[int, Values]
    clock: datetime
    timezone: str
    meter: Any = None  # the `simulators.model.VirtualMeter` (relay, instantaneous values)
    at: datetime | None = None  # when it was taken (UTC)


@dataclass(frozen=True, slots=True)
class CosemObject:
    """One object: its class and version, and an encoder for each readable attribute (1: logical name)."""

    class_id: int
    version: int
    obis: Obis
    attributes: dict[int, Callable[[Reading], bytes]] = field(default_factory=dict)
    writable: frozenset[int] = frozenset()  # attributes a configurator may SET
    selective: dict[int, Callable[[Reading, bytes], bytes | None]] = field(default_factory=dict)  # by access

    def read_selected(self, attribute: int, access: bytes, reading: Reading) -> bytes | None:
        """The encoded value of `attribute` under selective `access` (selector and parameters), None when the
        object takes no such selection."""
        encoder = self.selective.get(attribute)
        return None if encoder is None else encoder(reading, access)

    def read(self, attribute: int, reading: Reading) -> bytes | None:
        """The encoded value of `attribute`, None when the object has no such attribute."""
        if attribute == 1:
            return axdr.octet_string(bytes(self.obis))
        encoder = self.attributes.get(attribute)
        return None if encoder is None else encoder(reading)


def _register(channel: int, tariff: int) -> CosemObject:
    def value(reading: Reading) -> bytes:
        values = reading.registers.get(tariff)
        if values is None:  # a single-tariff meter counts all in T1; a tariff its schedule never uses stays 0
            values = reading.registers[0] if tariff == 1 and len(reading.registers) == 1 else {}
        wh = values.get(CHANNELS[channel - 1])
        return axdr.double_long_unsigned(int(wh or 0) & 0xFFFFFFFF)

    unit = UNIT_WH if channel in (1, 2) else UNIT_VARH
    scaler_unit = axdr.structure(axdr.integer(0), axdr.enum(unit))
    return CosemObject(REGISTER, 0, (1, 0, channel, 8, tariff, 255), {2: value, 3: lambda _: scaler_unit})


def _clock() -> CosemObject:
    def time_zone(reading: Reading) -> bytes:
        offset = reading.clock.astimezone(ZoneInfo(reading.timezone)).utcoffset()
        return axdr.long(-int(offset.total_seconds() // 60) if offset else 0)

    return CosemObject(
        CLOCK,
        0,
        CLOCK_OBIS,
        {
            2: lambda r: axdr.octet_string(axdr.date_time(r.clock, r.timezone)),
            3: time_zone,
            9: lambda _: axdr.enum(1),  # clock base 1: internal crystal
        },
        writable=frozenset({2}),
    )


def _access_rights(obj: CosemObject) -> bytes:
    """access_rights of one object_list entry: attribute access (read, or read-write) and no methods."""
    attributes = sorted({1, *obj.attributes})
    rights = [
        axdr.structure(axdr.integer(a), axdr.enum(3 if a in obj.writable else 1), axdr.null()) for a in attributes
    ]
    return axdr.structure(axdr.array(rights), axdr.array([]))


def _object_list(reading: Reading) -> bytes:
    entries = [
        axdr.structure(
            axdr.long_unsigned(obj.class_id),
            axdr.unsigned(obj.version),
            axdr.octet_string(bytes(obj.obis)),
            _access_rights(obj),
        )
        for obj in OBJECTS.values()
    ]
    return axdr.array(entries)


def _table() -> dict[Obis, CosemObject]:
    objects = [_register(channel, tariff) for channel in range(1, 5) for tariff in range(5)]
    objects.append(_clock())
    objects.append(CosemObject(ASSOCIATION_LN, 1, ASSOCIATION_OBIS, {2: _object_list}))
    return {obj.obis: obj for obj in objects}


OBJECTS: dict[Obis, CosemObject] = _table()


def obis_text(obis: Obis) -> str:
    """``A.B.C.D.E.F``."""
    return ".".join(str(part) for part in obis)
