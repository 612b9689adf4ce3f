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
