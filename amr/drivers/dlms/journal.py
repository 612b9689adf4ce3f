"""DLMS/COSEM (СПОДЭС) event logs 0.0.99.98.x.255 as normalised events.

An event log is a class 7 profile generic whose buffer (attribute 2) is an array of
structures, one per record: the clock (a 12-byte COSEM date-time, see `values.clock`) and the
event code (an unsigned integer), in the order of its capture objects (attribute 3; СПОДЭС
puts the clock first and the event code second)::

    01 n                         array of n records
      02 02                      structure of two
        09 0C yyyy mm dd wd hh mi ss hs dev(2) st     clock 0.0.1.0.0.255, attribute 2
        11 cc                    (or 12 cc cc) event code 0.0.96.11.x.255, attribute 2

Journals (the x of 0.0.99.98.x.255, the СПОДЭС profile of IEC 62056 for Russian meters) and
the event codes mapped here; any other code is kept as ``other`` with the journal and code in
the detail and the record in ``raw``, so nothing read is dropped:

====  =====================  ===========================================================
x     journal                codes mapped
====  =====================  ===========================================================
0     voltage                1/2 phase A lost/restored, 3/4 phase B, 5/6 phase C;
                             7/8 overvoltage of any phase start/end, 9/10 low voltage
                             of any phase start/end; 13..18 overvoltage of phase A, B, C
                             start/end; 19..24 dip of phase A, B, C start/end
2     on/off                 1 power off, 2 power on
3     data correction        3 time set, 68 time corrected
4     external impacts       1/2 magnetic field start/end, 3 terminal cover seal,
                             4 case seal (opened)
6     access                 1 unauthorised access attempt
7     self-diagnosis         2, 4, 5, 7, 9, 11: measuring unit, computing unit, real-time
                             clock, power supply, display, memory error
====  =====================  ===========================================================

The codes are those of ГОСТ Р 58940-2020 (the national standard made from СТО 34.01-5.1-006
СПОДЭС), annex Д, tables Д.1 (voltage), Д.2 (current), Д.3 (on/off and load relay), Д.4
(programming / data correction), Д.5 (external impacts), Д.6..Д.8. Checked in November 2026
against two public implementations that agree on every code mapped here: a Python СПОДЭС
client's event tables that cite those tables, and a meter firmware's event enumeration (journal
number in the high byte, code in the low byte: 0x0001..0x001A voltage, 0x0201/0x0202 power
off/on, 0x0303 time set, 0x0344 time correction, 0x0401..0x0404 external impacts, 0x0601
unauthorised access, 0x0701..0x070C self-diagnosis). The current journal (1: export, CT
break, current without voltage...) has no counterpart in the event catalogue and stays ``other``.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from dlms_cosem import dlms_data  # type: ignore[import-untyped]

from amr.core.events import MeterEvent
from amr.drivers.dlms import errors, values

JOURNALS: dict[int, str] = {
    0: "voltage",
    1: "current",
    2: "on/off",
    3: "data correction",
    4: "external impacts",
    5: "communication",
    6: "access",
    7: "self-diagnosis",
    8: "reactive power",
    9: "power quality",
}
CODES: dict[tuple[int, int], tuple[str, str]] = {  # (journal, event code) → (event code here, detail)
    (0, 1): ("power.phase_off", "phase A"),
    (0, 2): ("power.phase_on", "phase A"),
    (0, 3): ("power.phase_off", "phase B"),
    (0, 4): ("power.phase_on", "phase B"),
    (0, 5): ("power.phase_off", "phase C"),
    (0, 6): ("power.phase_on", "phase C"),
    (0, 7): ("voltage.high", "any phase"),
    (0, 8): ("voltage.normal", "overvoltage of any phase ended"),
    (0, 9): ("voltage.low", "any phase"),
    (0, 10): ("voltage.normal", "low voltage of any phase ended"),
    **{(0, 13 + 2 * i): ("voltage.high", f"phase {p}") for i, p in enumerate("ABC")},
    **{(0, 14 + 2 * i): ("voltage.normal", f"overvoltage of phase {p} ended") for i, p in enumerate("ABC")},
    **{(0, 19 + 2 * i): ("voltage.low", f"dip of phase {p}") for i, p in enumerate("ABC")},
    **{(0, 20 + 2 * i): ("voltage.normal", f"dip of phase {p} ended") for i, p in enumerate("ABC")},
    (2, 1): ("power.off", ""),
    (2, 2): ("power.on", ""),
    (3, 3): ("clock.changed", "time set"),
    (3, 68): ("clock.changed", "time corrected"),
    (4, 1): ("tamper.magnetic", ""),
    (4, 2): ("tamper.magnetic_end", ""),
    (4, 3): ("tamper.terminal_opened", ""),
    (4, 4): ("tamper.cover_opened", ""),
    (6, 1): ("access.denied", "unauthorised access attempt"),
    **{
        (7, n): ("diagnostic.error", unit)
        for n, unit in (
            (2, "measuring unit"),
            (4, "computing unit"),
            (5, "real-time clock"),
            (7, "power supply"),
            (9, "display"),
            (11, "memory"),
        )
    },
}


def journal_obis(journal: int) -> str:
    """The logical name of event log `journal`: 0.0.99.98.x.255."""
    return f"0.0.99.98.{journal}.255"


def _date_time(item: Any, site: tzinfo) -> Any:
    raw = bytes(item.value) if isinstance(item, dlms_data.OctetStringData | dlms_data.DateTimeData) else b""
    return values.clock(bytes((0x09, len(raw))) + raw, site)


def events_from_buffer(serial: str, journal: int, buffer: bytes, site: tzinfo) -> list[MeterEvent]:
    """The events of one event log's buffer (attribute 2 as received), oldest first."""
    records = values.decode(buffer)
    if not isinstance(records, dlms_data.DataArray):
        raise errors.protocol(f"event log {journal_obis(journal)}: the buffer is not an array", errors.VALUE)
    found: list[MeterEvent] = []
    for record in records.value:
        parts = getattr(record, "value", None)
        if not isinstance(record, dlms_data.DataStructure) or not isinstance(parts, list) or len(parts) < 2:
            raise errors.protocol(f"event log {journal_obis(journal)}: a record is not (clock, code)", errors.VALUE)
        at = _date_time(parts[0], site)
        number = parts[1].value
        if isinstance(number, bool) or not isinstance(number, int):
            raise errors.protocol(f"event log {journal_obis(journal)}: event code {number!r}", errors.VALUE)
        code, detail = CODES.get((journal, number), ("other", f"{JOURNALS.get(journal, journal)} code {number}"))
        raw = {"protocol": "dlms", "journal": journal_obis(journal), "event_code": number}
        found.append(MeterEvent(serial, at, code, raw, "meter", detail))
    found.sort(key=lambda e: e.ts)
    return found


__all__ = ["CODES", "JOURNALS", "events_from_buffer", "journal_obis"]
