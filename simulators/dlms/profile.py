"""The load profile 1.0.99.1.0.255 of a simulated СПОДЭС meter (profile generic, class 7, version 1).

Attributes (DLMS UA 1000-1 "Blue Book", Profile generic): 2 the buffer, 3 the capture objects, 4
the capture period (1800 s), 7 entries in use, 8 profile entries (5760: 120 days at 30 minutes).
Columns: the clock 0.0.1.0.0.255 attribute 2, the energy of the period A+ A- R+ R-
1.0.1/2/3/4.29.0.255 attribute 2 (class 3, scaler -1: tenths of Wh or varh, double-long-unsigned),
and the status 0.0.96.10.7.255 attribute 2 (class 1, unsigned: bit 7 power down, bit 5 clock
adjusted). Each entry is stamped at the END of its period, in the meter's local time.

The records come from a `simulators.profile_memory.ProfileMemory` per meter (`PROFILES`, made
from the meter's start on first use; a test puts its own there for outages and clock changes):
a period without power has no entry, the period power came back in has the power-down bit.

The buffer is read whole, or by range (access selector 1)::

    01 02 04 02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00 09 0C <from> 09 0C <to> 01 00

from and to inclusive; only the clock may restrict, and every column is given (selected_values
empty). Any other selection is answered with other-reason.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from functools import partial

from simulators.dlms import axdr
from simulators.dlms.objects import CLOCK, CLOCK_OBIS, OBJECTS, PROFILE_GENERIC, REGISTER, CosemObject, Obis, Reading
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory

PROFILE_OBIS: Obis = (1, 0, 99, 1, 0, 255)
STATUS_OBIS: Obis = (0, 0, 96, 10, 7, 255)
DATA = 1
PERIOD = timedelta(minutes=30)
ENTRIES = 5760  # 120 days of 30-minute entries
SCALER = -1  # the energy columns count tenths of Wh (varh)
POWER_DOWN, CLOCK_ADJUSTED = 0x80, 0x20
CHANNEL_OBIS: list[Obis] = [(1, 0, c, 29, 0, 255) for c in range(1, 5)]
RANGE = 1  # access selector 1: range_descriptor
RESTRICTING_CLOCK = bytes.fromhex("0204120008090600000100 00FF0F02120000".replace(" ", ""))
PROFILES: dict[str, ProfileMemory] = {}  # serial → the meter's profile memory
_LOCK = threading.Lock()


def memory(meter: VirtualMeter) -> ProfileMemory:
    """The meter's profile memory (made from its start, 120 days deep, when none was given)."""
    with _LOCK:
        if meter.serial not in PROFILES:
            PROFILES[meter.serial] = ProfileMemory(meter, period=PERIOD, records=ENTRIES)
        return PROFILES[meter.serial]


def _memory(reading: Reading) -> tuple[ProfileMemory, datetime]:
    if reading.meter is None or reading.at is None:
        raise ValueError("a reading without its meter")
    return memory(reading.meter), reading.clock


def _entries(reading: Reading, since: datetime | None = None, until: datetime | None = None) -> bytes:
    """The buffer: one structure per closed period whose capture time lies in [since, until]."""
    profile, now = _memory(reading)
    entries = []
    for begin in profile.times(now)[:-1]:  # the newest is the running period: not captured yet
        captured = begin + profile.period
        if (since is not None and captured < since) or (until is not None and captured > until):
            continue
        pulses = profile.pulses(begin, now)  # 1 Wh a pulse at the default constant
        status = {"power": POWER_DOWN, "clock": CLOCK_ADJUSTED, None: 0}[profile.cause(begin)]
        columns = [axdr.octet_string(axdr.date_time(captured, reading.timezone))]
        columns += [axdr.double_long_unsigned(int(pulses[c] or 0) * 10**-SCALER) for c in pulses]
        entries.append(axdr.structure(*columns, axdr.unsigned(status)))
    return axdr.array(entries)


def _selected(reading: Reading, access: bytes) -> bytes | None:
    """The buffer by a range of the clock column; None for a selection this meter does not take."""
    found = parse_range(access, reading.timezone)
    return None if found is None else _entries(reading, *found)


def parse_range(access: bytes, timezone: str) -> tuple[datetime, datetime] | None:
    """[from, to] (UTC) of a range_descriptor on the clock column with every column selected; None for
    any other selection."""
    body = access[1:]
    head = len(RESTRICTING_CLOCK) + 2
    if access[:1] != bytes((RANGE,)) or body[:2] != b"\x02\x04" or body[2:head] != RESTRICTING_CLOCK:
        return None
    if body[head : head + 2] != b"\x09\x0c" or body[head + 14 : head + 16] != b"\x09\x0c" or body[head + 28 :] != (
        b"\x01\x00"
    ):
        return None
    try:
        return (axdr.parse_date_time(body[head + 2 : head + 14], timezone),
                axdr.parse_date_time(body[head + 16 : head + 28], timezone))
    except ValueError:
        return None


def _capture_objects() -> bytes:
    def column(class_id: int, obis: Obis) -> bytes:
        return axdr.structure(axdr.long_unsigned(class_id), axdr.octet_string(bytes(obis)), axdr.integer(2),
                              axdr.long_unsigned(0))

    return axdr.array([column(CLOCK, CLOCK_OBIS), *(column(REGISTER, o) for o in CHANNEL_OBIS),
                       column(DATA, STATUS_OBIS)])


def objects() -> list[CosemObject]:
    """The profile generic, its energy-of-the-period registers and its status."""
    captured = _capture_objects()
    period = axdr.double_long_unsigned(int(PERIOD.total_seconds()))
    found = [
        CosemObject(PROFILE_GENERIC, 1, PROFILE_OBIS, {
            2: _entries,
            3: lambda _: captured,
            4: lambda _: period,
            7: lambda r: axdr.double_long_unsigned(len(_memory(r)[0].times(r.clock)) - 1),
            8: lambda _: axdr.double_long_unsigned(ENTRIES),
        }, selective={2: _selected}),
        CosemObject(DATA, 0, STATUS_OBIS, {2: lambda _: axdr.unsigned(0)}),
    ]
    for channel, obis in enumerate(CHANNEL_OBIS):
        scaler_unit = axdr.structure(axdr.integer(SCALER), axdr.enum(30 if channel < 2 else 32))
        found.append(CosemObject(REGISTER, 0, obis, {2: lambda _: axdr.double_long_unsigned(0),
                                                     3: partial(_constant, scaler_unit)}))
    return found


def _constant(value: bytes, _reading: Reading) -> bytes:
    return value


OBJECTS.update({obj.obis: obj for obj in objects()})
