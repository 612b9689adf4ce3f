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


def test_a_buffer_that_is_not_records_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not an array"):
        events_from_buffer("DL-1", 2, b"\x11\x01", MSK)
    with pytest.raises(ProtocolError, match="not \\(clock, code\\)"):
        events_from_buffer("DL-1", 2, buffer(b"\x11\x01"), MSK)
