"""СПОДЭС event logs (0.0.99.98.x.255, class 7 buffer: array of {COSEM date-time, event code}) on bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from amr.drivers.dlms.journal import events_from_buffer, journal_obis
from amr.errors import ProtocolError

MSK = ZoneInfo("Europe/Moscow")


def date_time(year: int, month: int, day: int, hour: int, minute: int, second: int, deviation: int) -> bytes:
    """A COSEM date-time (Blue Book 4.1.6.1): year(2) month day weekday hour min sec hundredths deviation(2) status."""
    weekday = datetime(year, month, day).isoweekday()
    return (bytes((0x09, 0x0C)) + year.to_bytes(2, "big") + bytes((month, day, weekday, hour, minute, second, 0))
            + deviation.to_bytes(2, "big", signed=True) + b"\x00")


def buffer(*records: bytes) -> bytes:
    return bytes((0x01, len(records))) + b"".join(records)


def record(stamp: bytes, code: bytes) -> bytes:
    return b"\x02\x02" + stamp + code


def test_on_off_and_tamper_records_become_events_in_utc() -> None:
    # Moscow time with deviation -180 (UTC = local + deviation), event codes as unsigned (0x11) and long-unsigned (0x12)
    data = buffer(
        record(date_time(2026, 1, 15, 3, 4, 5, -180), b"\x11\x01"),
        record(date_time(2026, 1, 15, 3, 24, 5, -180), b"\x12\x00\x02"),
    )
    events = events_from_buffer("DL-1", 2, data, MSK)
    assert [(e.code, e.ts) for e in events] == [
        ("power.off", datetime(2026, 1, 15, 0, 4, 5, tzinfo=UTC)),
        ("power.on", datetime(2026, 1, 15, 0, 24, 5, tzinfo=UTC)),
    ]
    assert events[0].raw == {"protocol": "dlms", "journal": "0.0.99.98.2.255", "event_code": 1}
    tamper = events_from_buffer("DL-1", 4, buffer(record(date_time(2026, 1, 15, 3, 4, 5, -180), b"\x11\x04")), MSK)
    assert tamper[0].code == "tamper.cover_opened" and tamper[0].alarming


def test_phase_records_name_the_phase_and_unknown_codes_are_kept() -> None:
    data = buffer(
        record(date_time(2026, 1, 15, 3, 0, 0, -180), b"\x11\x03"),
        record(date_time(2026, 1, 15, 2, 0, 0, -180), b"\x11\x63"),
    )
    events = events_from_buffer("DL-1", 0, data, MSK)
    assert [(e.code, e.detail) for e in events] == [("other", "voltage code 99"), ("power.phase_off", "phase B")]
    assert journal_obis(9) == "0.0.99.98.9.255"


def test_codes_of_the_gost_annex_tables_beyond_power_and_tamper() -> None:
    # ГОСТ Р 58940-2020 annex Д: voltage 7 overvoltage (any phase), 21 dip of phase B start, 22 its end;
    # data correction 3 time set, 68 time correction; access 1 unauthorised attempt; self-diagnosis 5 clock error,
    # 6 clock OK (not an error: kept as other)
    at = date_time(2026, 1, 15, 3, 0, 0, -180)
    voltage = events_from_buffer("DL-1", 0, buffer(*(record(at, bytes((0x11, n))) for n in (7, 21, 22))), MSK)
    assert [(e.code, e.detail) for e in voltage] == [
        ("voltage.high", "any phase"),
        ("voltage.low", "dip of phase B"),
        ("voltage.normal", "dip of phase B ended"),
    ]
    corrections = events_from_buffer("DL-1", 3, buffer(record(at, b"\x11\x03"), record(at, b"\x11\x44")), MSK)
    assert [(e.code, e.detail) for e in corrections] == [
        ("clock.changed", "time set"),
        ("clock.changed", "time corrected"),
    ]
    assert events_from_buffer("DL-1", 6, buffer(record(at, b"\x11\x01")), MSK)[0].code == "access.denied"
    diagnosis = events_from_buffer("DL-1", 7, buffer(record(at, b"\x11\x05"), record(at, b"\x11\x06")), MSK)
    assert [(e.code, e.detail) for e in diagnosis] == [
        ("diagnostic.error", "real-time clock"),
        ("other", "self-diagnosis code 6"),
    ]


def test_a_buffer_that_is_not_records_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not an array"):
        events_from_buffer("DL-1", 2, b"\x11\x01", MSK)
    with pytest.raises(ProtocolError, match="not \\(clock, code\\)"):
        events_from_buffer("DL-1", 2, buffer(b"\x11\x01"), MSK)
