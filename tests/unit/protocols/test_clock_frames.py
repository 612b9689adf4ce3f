"""Clock and journal frames on bytes: Mercury 230 (Incotex, «Протокол обмена» of the three-phase Mercury
meters: command 03h parameters 0Ch/0Dh, command 04h arrays 00h-12h; BCD time fields) and IEC 62056-21
clock writes (W1 0.9.1 / 0.9.2)."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from amr.errors import ProtocolError
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_time as mt
from amr.protocols.crc import append_crc, crc_ok, strip_crc


def test_read_clock_request_is_address_04_00_and_crc() -> None:
    frame = mt.encode_read_clock(0x11)
    assert strip_crc(frame) == bytes.fromhex("11 04 00") and crc_ok(frame) and len(frame) == 5


def test_clock_answer_is_eight_bcd_bytes_seconds_first() -> None:
    # 2026-01-15 12:34:56, Thursday (4), winter flag 1: 56 34 12 04 15 01 26 01
    answer = append_crc(bytes.fromhex("11 56 34 12 04 15 01 26 01"))
    clock = mt.decode_clock_answer(answer, 0x11)
    assert clock.local == datetime(2026, 1, 15, 12, 34, 56) and clock.winter
    assert mt.encode_clock_answer(0x11, datetime(2026, 1, 15, 12, 34, 56)) == answer


def test_correction_carries_the_new_time_of_day_in_bcd() -> None:
    frame = mt.encode_correct_clock(0x11, time(23, 59, 8))
    assert strip_crc(frame) == bytes.fromhex("11 03 0D 08 59 23")
    assert mt.decode_clock_write(strip_crc(frame)[2:]).correct_to == time(23, 59, 8)


def test_setting_the_time_carries_weekday_date_and_season() -> None:
    frame = mt.encode_set_clock(0x11, datetime(2026, 3, 2, 7, 5, 0))  # a Monday
    assert strip_crc(frame) == bytes.fromhex("11 03 0C 00 05 07 01 02 03 26 01")
    assert mt.decode_clock_write(strip_crc(frame)[2:]).local == datetime(2026, 3, 2, 7, 5, 0)


def test_a_time_array_record_is_two_six_byte_times_and_zero_means_never() -> None:
    request = mt.encode_read_record(0x11, mt.TimeArray.COVER, 3)
    assert strip_crc(request) == bytes.fromhex("11 04 12 03")
    answer = append_crc(bytes.fromhex("11 05 04 03 15 01 26 00 00 00 00 00 00"))
    record = mt.decode_record_answer(answer, 0x11)
    assert record.first == datetime(2026, 1, 15, 3, 4, 5) and record.second is None
    assert mt.encode_record_answer(0x11, record.first, None) == answer


def test_a_refusal_in_place_of_an_answer_raises_the_status() -> None:
    refused = merc.encode_status_answer(0x11, merc.Status.CLOCK_ALREADY_CORRECTED)
    assert mt.is_complete(mt.encode_read_clock(0x11), refused)
    with pytest.raises(merc.MercuryStatusError) as caught:
        mt.decode_clock_answer(refused, 0x11)
    assert caught.value.code == "mercury.clock_corrected" and "already been corrected today" in str(caught.value)


def test_garbled_times_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="not a BCD byte"):
        mt.decode_clock_answer(append_crc(bytes.fromhex("11 5A 34 12 04 15 01 26 01")), 0x11)
    with pytest.raises(ProtocolError, match="not a time"):
        mt.decode_clock_answer(append_crc(bytes.fromhex("11 00 00 00 04 31 02 26 01")), 0x11)
    with pytest.raises(ProtocolError, match="must be 11 bytes"):
        mt.decode_clock_answer(append_crc(bytes.fromhex("11 00 00 00 04 15 01 26")), 0x11)
    with pytest.raises(ProtocolError, match="address 18"):
        mt.decode_clock_answer(append_crc(bytes.fromhex("12 56 34 12 04 15 01 26 01")), 0x11)


def test_iec_clock_writes_are_w1_commands_with_bcc() -> None:
    # IEC 62056-21:2002 §6.3.14: SOH W1 STX data ETX BCC; BCC = XOR of the bytes after SOH up to ETX
    from amr.drivers.iec62056_21.clock import clock_values, write_command
    from amr.protocols.iec62056_21 import check_block

    frame = write_command("0.9.1", "235908")
    assert frame[:-1] == b"\x01W1\x020.9.1(235908)\x03"
    bcc = 0
    for byte in frame[1:-1]:
        bcc ^= byte
    assert frame[-1] == bcc and check_block(frame)
    assert clock_values(datetime(2026, 1, 15, 23, 59, 8)) == ("260115", "235908")


def test_iec_logbook_request_and_entries() -> None:
    # VDEW 2.1 logbook: R5 P.98(;) in programming mode; entries P.98(ZYYMMDDhhmmss)(status)()(0)
    from zoneinfo import ZoneInfo

    from amr.protocols.iec62056_21 import check_block
    from amr.protocols.iec62056_21.framing import ETX, STX, with_bcc
    from amr.protocols.iec62056_21.logbook import decode_logbook, encode_logbook_request, events_of

    request = encode_logbook_request()
    assert request[:-1] == b"\x01R5\x02P.98(;)\x03" and check_block(request)
    block = with_bcc(STX, b"P.98(0260115030405)(00000080)()(0)\r\nP.98(0260115032405)(00000040)()(0)\r\n"
                          b"P.98(2260115010000)(000000A0)()(0)\r\nP.98(0260116000000)(00000008)()(0)\r\n"
                     + bytes((ETX,)))
    entries = decode_logbook(block)
    assert [(e.season, e.status) for e in entries] == [(0, 0x80), (0, 0x40), (2, 0xA0), (0, 0x08)]
    events = events_of("IE1", entries, ZoneInfo("Europe/Moscow"))
    assert [(e.code, e.ts.isoformat(), e.detail) for e in events] == [
        ("power.off", "2026-01-15T00:04:05+00:00", ""),
        ("power.on", "2026-01-15T00:24:05+00:00", ""),
        ("clock.changed", "2026-01-15T01:00:00+00:00", ""),  # season 2: written in UTC; 0xA0 = clock set + off
        ("power.off", "2026-01-15T01:00:00+00:00", ""),
        ("other", "2026-01-15T21:00:00+00:00", "P.98 status 00000008"),
    ]
    assert events[0].raw["status"] == "00000080" and events[0].raw["line"].startswith("P.98(0260115030405)")
    assert decode_logbook(with_bcc(STX, b"P.98(ERROR)\r\n" + bytes((ETX,)))) == []
    with pytest.raises(ProtocolError, match=r"is not P\.98"):
        decode_logbook(with_bcc(STX, b"P.98(0260115)(80)\r\n" + bytes((ETX,))))
