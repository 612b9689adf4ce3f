"""DLMS framing (`amr.protocols.dlms_hdlc`) and values on bytes, against published examples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from amr.core.domain import Channel
from amr.drivers.dlms import values
from amr.errors import ProtocolError
from amr.protocols import dlms_hdlc as hdlc


def test_crc16_x25_check_value() -> None:
    # The CRC catalogue's CRC-16/X-25 (IBM-SDLC) check value over "123456789" is 0x906E, sent low byte first.
    assert hdlc.crc16_x25(b"123456789") == 0x906E


def test_snrm_frame_as_published() -> None:
    # Gurux's HDLC framing documentation: SNRM from the public client (0x21) to server 1 (0x03).
    frame = hdlc.Frame(bytes([0x03]), hdlc.client_address(16), hdlc.SNRM | hdlc.POLL_FINAL)
    assert frame.encode() == bytes.fromhex("7EA00703219 30F017E".replace(" ", ""))
    assert hdlc.decode(frame.encode()) == frame


def test_server_addresses_of_one_two_and_four_bytes() -> None:
    assert hdlc.server_address(1, None, 1) == bytes([0x03])
    assert hdlc.server_address(1, 17, 2) == bytes([0x02, 0x23])
    # 4 bytes: upper 1 → 00 02, lower 0x1234 → (0x24) << 1, ((0x34) << 1) | 1
    assert hdlc.server_address(1, 0x1234, 4) == bytes([0x00, 0x02, 0x48, 0x69])
    with pytest.raises(ValueError, match="7-bit"):
        hdlc.server_address(1, 200, 2)


def test_information_frame_round_trip_and_bad_fcs() -> None:
    frame = hdlc.Frame(hdlc.server_address(1, 17, 2), hdlc.client_address(16), hdlc.i_control(0, 0),
                       hdlc.LLC_REQUEST + b"\xc0\x01\xc1", segmented=True)
    data = frame.encode()
    assert hdlc.decode(data) == frame
    broken = data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:]
    with pytest.raises(hdlc.FrameError, match="FCS"):
        hdlc.decode(broken)


def test_an_address_of_three_bytes_is_refused() -> None:
    frame = hdlc.Frame(bytes([0x02, 0x02, 0x23]), hdlc.client_address(16), hdlc.i_control(0, 0), b"\xe6")
    with pytest.raises(hdlc.FrameError, match="neither 1, 2 nor 4 bytes"):
        hdlc.decode(frame.encode())


def test_register_values_to_exact_wh() -> None:
    kwh = values.ScalerUnit(3, values.UNIT_WH)
    assert kwh.energy(Channel.A_PLUS, bytes.fromhex("0600003039")) == 12_345_000
    tenths = values.ScalerUnit(-1, values.UNIT_WH)
    assert tenths.energy(Channel.A_PLUS, bytes.fromhex("0600000064")) == 10
    with pytest.raises(ProtocolError, match="not a whole Wh"):
        tenths.energy(Channel.A_PLUS, bytes.fromhex("0600000065"))
    with pytest.raises(ProtocolError, match="expected varh"):
        kwh.energy(Channel.R_PLUS, bytes.fromhex("0600003039"))


def test_scaler_unit_structure() -> None:
    # Blue Book class 3 attribute 3: structure { integer scaler, enum unit }: 02 02 0F FD 16 1E is 10^-3 Wh.
    assert values.ScalerUnit.from_bytes(bytes.fromhex("02020FFD161E")) == values.ScalerUnit(-3, 30)


def test_clock_with_deviation() -> None:
    # 2025-01-15 10:30:00 local, deviation -180 (UTC+3: local - 3 h = UTC), status 0.
    data = bytes.fromhex("090C07E9010F030A1E0000FF4C00")
    assert values.clock(data, UTC) == datetime(2025, 1, 15, 7, 30, tzinfo=UTC)
