"""Mercury 230/234 frames, both directions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from amr.core.domain import Channel
from amr.errors import DeviceError, ProtocolError
from amr.protocols import mercury230 as m
from amr.protocols.crc import append_crc

# Frames of a captured session, as kept in the public test data of the
# wb-mqtt-serial project (github.com/wirenboard/wb-mqtt-serial,
# test/TEMDeviceTest.Mercury230ReadEnergy.dat): open channel at address 0 with
# the default user password, status OK, read energy since reset, and two
# answers (A+ and R+ present, A- and R- not supported).
OPEN_REQUEST = bytes.fromhex("00 01 01 01 01 01 01 01 01 77 81")
STATUS_OK = bytes.fromhex("00 00 01 B0")
ENERGY_REQUEST = bytes.fromhex("00 05 00 00 10 25")
ENERGY_ANSWER_1 = bytes.fromhex("00 30 00 28 C5 FF FF FF FF 04 00 9C 95 FF FF FF FF 44 AB")
ENERGY_ANSWER_2 = bytes.fromhex("00 30 00 29 C5 FF FF FF FF 04 00 9D 95 FF FF FF FF 45 BB")


# --- requests ---------------------------------------------------------------


def test_open_request_default_user_password() -> None:
    # "111111" is sent digit by digit as byte values 01 01 01 01 01 01.
    assert m.encode_open_request(0) == OPEN_REQUEST
    assert m.encode_open_request(0, m.AccessLevel.USER, "111111") == OPEN_REQUEST
    assert m.encode_open_request(0, password=b"\x01" * 6) == OPEN_REQUEST


def test_open_request_admin() -> None:
    frame = m.encode_open_request(0x2A, m.AccessLevel.ADMIN, "123456")
    assert frame[:9] == bytes.fromhex("2A 01 02 01 02 03 04 05 06")
    assert len(frame) == 11
    assert m.encode_open_request(0x2A, m.AccessLevel.ADMIN)[3:9] == b"\x02" * 6


def test_energy_request() -> None:
    assert m.encode_energy_request(0) == ENERGY_REQUEST
    frame = m.encode_energy_request(17, m.EnergyArray.MONTH, month=3, tariff=2)
    assert frame[:4] == bytes.fromhex("11 05 33 02")


def test_test_and_close_requests() -> None:
    assert m.encode_test_request(0) == STATUS_OK  # 00 00 + CRC, same bytes as "OK"
    assert m.encode_close_request(0)[:2] == b"\x00\x02"
    assert m.encode_close_request(0) == append_crc(b"\x00\x02")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: m.encode_energy_request(1, m.EnergyArray.MONTH, month=0), "month 1..12"),
        (lambda: m.encode_energy_request(1, m.EnergyArray.MONTH, month=13), "month 1..12"),
        (
            lambda: m.encode_energy_request(1, m.EnergyArray.SINCE_RESET, month=3),
            "only with the MONTH array",
        ),
        (lambda: m.encode_energy_request(1, tariff=5), "tariff"),
        (lambda: m.encode_test_request(256), "one byte"),
        (lambda: m.encode_open_request(1, password="11111"), "6 digits"),
        (lambda: m.encode_open_request(1, password="11111a"), "6 digits"),
        (lambda: m.encode_open_request(1, password=b"\x01" * 5), "6 bytes; got 5"),
    ],
)
def test_bad_request_arguments(call: Callable[[], bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_expected_answer_length() -> None:
    assert m.expected_answer_length(m.encode_test_request(1)) == 4
    assert m.expected_answer_length(m.encode_open_request(1)) == 4
    assert m.expected_answer_length(m.encode_close_request(1)) == 4
    assert m.expected_answer_length(ENERGY_REQUEST) == 19
    with pytest.raises(ValueError, match="0x0B"):
        m.expected_answer_length(append_crc(b"\x01\x0b\x00"))


def test_is_complete_answer() -> None:
    assert not m.is_complete_answer(ENERGY_REQUEST, ENERGY_ANSWER_1[:10])
    assert m.is_complete_answer(ENERGY_REQUEST, ENERGY_ANSWER_1)
    # A refusal arrives as a 4-byte status answer where 19 bytes were expected.
    assert m.is_complete_answer(ENERGY_REQUEST, m.encode_status_answer(0, m.Status.CHANNEL_NOT_OPEN))
    assert not m.is_complete_answer(ENERGY_REQUEST, ENERGY_ANSWER_1[:4])
    assert m.is_complete_answer(OPEN_REQUEST, STATUS_OK)


# --- answers ------------------------------------------------------------------


def test_energy_answer_byte_order() -> None:
    # A+ bytes 30 00 28 C5 are bits 16-23, 24-31, 0-7, 8-15: 0x0030C528.
    values = m.decode_energy_answer(ENERGY_ANSWER_1, 0)
    assert values == {
        Channel.A_PLUS: 0x0030C528,  # 3 196 200 Wh = 3196.200 kWh
        Channel.A_MINUS: None,
        Channel.R_PLUS: 0x0004959C,  # 300 444 varh
        Channel.R_MINUS: None,
    }
    assert m.decode_energy_answer(ENERGY_ANSWER_2, 0)[Channel.A_PLUS] == 3196201


def test_energy_answer_round_trip() -> None:
    assert m.encode_energy_answer(0, m.decode_energy_answer(ENERGY_ANSWER_1, 0)) == ENERGY_ANSWER_1
    values = {
        Channel.A_PLUS: 123456789,
        Channel.A_MINUS: 0,
        Channel.R_PLUS: m.MAX_ENERGY,
        Channel.R_MINUS: None,
    }
    assert m.decode_energy_answer(m.encode_energy_answer(7, values), 7) == values


def test_energy_answer_documented_layout() -> None:
    frame = m.encode_energy_answer(5, {Channel.A_PLUS: 0x11223344})
    assert frame[:5] == bytes.fromhex("05 22 11 44 33")
    assert frame[5:17] == b"\xff" * 12  # missing channels: not supported


def test_top_two_bits_masked() -> None:
    raw = bytes.fromhex("01 00 C0 00 00") + b"\xff" * 12  # bits 30 and 31 set, value 0
    assert m.decode_energy_answer(append_crc(raw), 1)[Channel.A_PLUS] == 0
    raw = bytes.fromhex("01 34 FF 78 56") + b"\xff" * 12
    assert m.decode_energy_answer(append_crc(raw), 1)[Channel.A_PLUS] == 0x3F345678


def test_energy_value_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1073741823"):
        m.encode_energy_answer(1, {Channel.A_PLUS: m.MAX_ENERGY + 1})
    with pytest.raises(ValueError, match="got -1"):
        m.encode_energy_answer(1, {Channel.A_PLUS: -1})


def test_status_ok() -> None:
    m.decode_status_answer(STATUS_OK, 0)
    assert m.encode_status_answer(0) == STATUS_OK


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (m.Status.ILLEGAL_COMMAND, "illegal command"),
        (m.Status.INTERNAL_ERROR, "internal meter error"),
        (m.Status.ACCESS_DENIED, "access denied"),
        (m.Status.CLOCK_ALREADY_CORRECTED, "already been corrected"),
        (m.Status.CHANNEL_NOT_OPEN, "channel not open"),
    ],
)
def test_status_errors(status: m.Status, text: str) -> None:
    answer = m.encode_status_answer(9, status)
    with pytest.raises(DeviceError, match=text) as caught:
        m.decode_status_answer(answer, 9)
    assert isinstance(caught.value, m.MercuryStatusError)
    assert caught.value.status == status
    assert caught.value.address == 9
    # The same refusal in place of an energy answer.
    with pytest.raises(m.MercuryStatusError, match=text):
        m.decode_energy_answer(answer, 9)


def test_status_ok_instead_of_energy() -> None:
    with pytest.raises(ProtocolError, match="status OK where 19 bytes"):
        m.decode_energy_answer(STATUS_OK, 0)


def test_unknown_status_code() -> None:
    with pytest.raises(DeviceError, match="status 9: unknown"):
        m.decode_status_answer(append_crc(b"\x01\x09"), 1)


def test_bad_crc() -> None:
    broken = ENERGY_ANSWER_1[:-1] + b"\x00"
    with pytest.raises(ProtocolError, match="CRC mismatch"):
        m.decode_energy_answer(broken, 0)
    with pytest.raises(ProtocolError, match="CRC mismatch"):
        m.decode_status_answer(b"\x00\x00\x01\xb1", 0)


def test_wrong_length() -> None:
    with pytest.raises(ProtocolError, match=r"must be 19 bytes.*got 18"):
        m.decode_energy_answer(ENERGY_ANSWER_1[:-1], 0)
    with pytest.raises(ProtocolError, match=r"must be 4 bytes.*got 5"):
        m.decode_status_answer(append_crc(b"\x00\x00\x00"), 0)


def test_wrong_address() -> None:
    with pytest.raises(ProtocolError, match="from address 0, expected address 3"):
        m.decode_energy_answer(ENERGY_ANSWER_1, 3)
    with pytest.raises(ProtocolError, match="from address 0, expected address 3"):
        m.decode_status_answer(STATUS_OK, 3)


# --- meter side -----------------------------------------------------------------


def test_decode_requests() -> None:
    assert m.decode_request(OPEN_REQUEST) == m.OpenRequest(0, 1, b"\x01" * 6)
    assert m.decode_request(ENERGY_REQUEST) == m.EnergyRequest(0, 0, 0, 0)
    assert m.decode_request(m.encode_test_request(4)) == m.ChannelTestRequest(4)
    assert m.decode_request(m.encode_close_request(4)) == m.CloseRequest(4)
    month = m.encode_energy_request(4, m.EnergyArray.MONTH, month=12, tariff=4)
    assert m.decode_request(month) == m.EnergyRequest(4, 3, 12, 4)


def test_decode_unknown_request() -> None:
    frame = append_crc(bytes.fromhex("04 0B 14 00"))
    assert m.decode_request(frame) == m.UnknownRequest(4, 0x0B, b"\x14\x00")


def test_decode_bad_requests() -> None:
    with pytest.raises(ProtocolError, match="CRC mismatch"):
        m.decode_request(OPEN_REQUEST[:-1] + b"\x00")
    with pytest.raises(ProtocolError, match="request 0x05 must be 6 bytes; got 5"):
        m.decode_request(append_crc(b"\x00\x05\x00"))
    with pytest.raises(ProtocolError, match="address and a command"):
        m.decode_request(append_crc(b"\x00"))


def test_simulated_session() -> None:
    """A master and a simulated meter talking through these functions only."""
    stored = {Channel.A_PLUS: 1_234_567, Channel.R_PLUS: 89_012}
    open_channel = False

    def meter(frame: bytes) -> bytes:
        nonlocal open_channel
        request = m.decode_request(frame)
        if isinstance(request, m.OpenRequest):
            open_channel = request.password == b"\x01" * 6
            status = m.Status.OK if open_channel else m.Status.ACCESS_DENIED
            return m.encode_status_answer(request.address, status)
        if isinstance(request, m.EnergyRequest):
            if not open_channel:
                return m.encode_status_answer(request.address, m.Status.CHANNEL_NOT_OPEN)
            return m.encode_energy_answer(request.address, stored)
        return m.encode_status_answer(request.address, m.Status.ILLEGAL_COMMAND)

    with pytest.raises(m.MercuryStatusError) as caught:
        m.decode_energy_answer(meter(m.encode_energy_request(12)), 12)
    assert caught.value.status == m.Status.CHANNEL_NOT_OPEN
    m.decode_status_answer(meter(m.encode_open_request(12)), 12)
    request = m.encode_energy_request(12)
    answer = meter(request)
    assert len(answer) == m.expected_answer_length(request)
    assert m.decode_energy_answer(answer, 12) == {
        Channel.A_PLUS: 1_234_567,
        Channel.A_MINUS: None,
        Channel.R_PLUS: 89_012,
        Channel.R_MINUS: None,
    }


# --- command 0x08: parameters ------------------------------------------------


def test_serial_number_request_and_answer_bytes() -> None:
    request = m.encode_parameter_request(0x11, m.Parameter.SERIAL_AND_DATE)
    assert request[:3] == bytes.fromhex("11 08 00") and len(request) == 5
    assert m.expected_answer_length(request) == m.SERIAL_ANSWER_LENGTH == 10
    decoded = m.decode_request(request)
    assert decoded == m.ParameterRequest(0x11, 0x00, b"")
    # serial 41563201, made 15.03.2021: each serial byte a binary value 0..99, then day, month, year
    answer = m.encode_serial_answer(0x11, "41563201", date(2021, 3, 15))
    assert answer[:8] == bytes.fromhex("11 29 38 20 01 0F 03 15")
    assert m.is_complete_answer(request, answer)
    assert m.decode_serial_answer(answer, 0x11) == m.SerialNumber("41563201", date(2021, 3, 15))
    leading_zeros = m.encode_serial_answer(0x11, "00000017", date(2020, 1, 1))
    assert m.decode_serial_answer(leading_zeros, 0x11).serial == "00000017"


def test_serial_number_answer_errors() -> None:
    refused = m.encode_status_answer(0x11, m.Status.ILLEGAL_COMMAND)
    with pytest.raises(m.MercuryStatusError, match="illegal command"):
        m.decode_serial_answer(refused, 0x11)
    bad_digit = append_crc(bytes.fromhex("11 64 00 00 01 01 01 15"))  # 0x64 = 100
    with pytest.raises(ProtocolError, match=r"0\.\.99"):
        m.decode_serial_answer(bad_digit, 0x11)
    bad_date = append_crc(bytes.fromhex("11 01 02 03 04 20 0D 15"))  # day 32, month 13
    with pytest.raises(ProtocolError, match="not a date"):
        m.decode_serial_answer(bad_date, 0x11)


def test_variant_request_and_answer_bytes() -> None:
    request = m.encode_parameter_request(5, m.Parameter.VARIANT)
    assert request[:3] == bytes.fromhex("05 08 12")
    assert m.expected_answer_length(request) == 9
    answer = m.encode_variant_answer(5, bytes.fromhex("B4 E3 87 61 00 00"))
    assert m.decode_variant_answer(answer, 5) == bytes.fromhex("B4 E3 87 61 00 00")
    with_argument = m.encode_parameter_request(5, 0x11, b"\x11")
    assert m.decode_request(with_argument) == m.ParameterRequest(5, 0x11, b"\x11")
