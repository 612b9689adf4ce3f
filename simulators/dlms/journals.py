"""The event logs 0.0.99.98.x.255 of a simulated СПОДЭС meter (profile generic, class 7).

Each log's buffer (attribute 2) holds one entry per event: the clock 0.0.1.0.0.255 attribute 2
(the meter's local time) and the event code 0.0.96.11.x.255 attribute 2 (class 1, unsigned), the
columns its attribute 3 lists. Logs here: 0 voltage, 2 on/off, 4 external impacts (the codes of
`amr.drivers.dlms.journal`). The on/off log holds a power off (code 1) and on (code 2) for each
outage of the meter's profile memory (`simulators.dlms.profile`); `EVENTS` adds any other
(serial → list of (log, UTC time, code)), as a test or the demo puts them. The buffer is read
whole, or by a range of the clock column (`simulators.dlms.profile.parse_range`).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from simulators.dlms import axdr
from simulators.dlms.objects import CLOCK, CLOCK_OBIS, OBJECTS, PROFILE_GENERIC, CosemObject, Obis, Reading
from simulators.dlms.profile import memory, parse_range

LOGS = (0, 2, 4)  # voltage, on/off, external impacts
DATA = 1
POWER_OFF, POWER_ON = 1, 2
EVENTS: dict[str, list[tuple[int, datetime, int]]] = {}  # serial → (log, UTC time, event code)


def events(reading: Reading, log: int) -> list[tuple[datetime, int]]:
    """The events of `log` stamped by `reading.clock` (the meter's now), oldest first."""
    found: list[tuple[datetime, int]] = []
    meter = reading.meter
    if meter is None:
        return found
    if log == 2:
        for down, up in memory(meter).outages:
            found += [(down, POWER_OFF), (up, POWER_ON)]
    found += [(at, code) for number, at, code in EVENTS.get(meter.serial, []) if number == log]
    return sorted(e for e in found if e[0] <= reading.clock)


def _buffer(log: int, reading: Reading, since: datetime | None = None, until: datetime | None = None) -> bytes:
    entries = [
        axdr.structure(axdr.octet_string(axdr.date_time(at, reading.timezone)), axdr.unsigned(code))
        for at, code in events(reading, log)
        if (since is None or at >= since) and (until is None or at <= until)
    ]
    return axdr.array(entries)


def _selected(log: int, reading: Reading, access: bytes) -> bytes | None:
    found = parse_range(access, reading.timezone)
    return None if found is None else _buffer(log, reading, *found)


def _log(log: int) -> CosemObject:
    code_obis: Obis = (0, 0, 96, 11, log, 255)
    columns = axdr.array([
        axdr.structure(axdr.long_unsigned(CLOCK), axdr.octet_string(bytes(CLOCK_OBIS)), axdr.integer(2),
                       axdr.long_unsigned(0)),
        axdr.structure(axdr.long_unsigned(DATA), axdr.octet_string(bytes(code_obis)), axdr.integer(2),
                       axdr.long_unsigned(0)),
    ])
    return CosemObject(PROFILE_GENERIC, 1, (0, 0, 99, 98, log, 255),
                       {2: partial(_buffer, log), 3: partial(_constant, columns)},
                       selective={2: partial(_selected, log)})


def _constant(value: bytes, _reading: Reading) -> bytes:
    return value


OBJECTS.update({obj.obis: obj for obj in (_log(log) for log in LOGS)})
