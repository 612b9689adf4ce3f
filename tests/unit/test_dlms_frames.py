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


# DLMS User Association, "Examples for DLMS/COSEM information exchange" (Győző Kmethy), 1 "SNRM/UA frame
# exchange with HDLC parameter negotiation" and 2 "AARQ/AARE exchange": client 16 (0x21) to the server
# at upper HDLC address 1, lower address 0x11, written on 4 bytes (00 02 00 23).
DLMS_UA_SNRM = "7EA00A00020023219318717E"  # no information field: the default parameters proposed
DLMS_UA_UA = "7EA023210002002373F6C58180140502008006020080070400000001080400000001CE6A7E"
DLMS_UA_AARQ = (  # an I-frame, N(S) = N(R) = 0 with the P bit, the LLC header E6 E6 00 and the AARQ
    "7EA02E0002002321107ECBE6E600601DA109060760857405080101BE10040E01000000065F1F040000301DFFFFD4C57E"
)


def test_snrm_ua_and_an_i_frame_as_in_the_dlms_ua_examples() -> None:
    server, client = hdlc.server_address(1, 0x11, 4), hdlc.client_address(16)
    snrm = hdlc.Frame(server, client, hdlc.SNRM | hdlc.POLL_FINAL)
    assert snrm.encode() == bytes.fromhex(DLMS_UA_SNRM)
    assert hdlc.decode(bytes.fromhex(DLMS_UA_SNRM)) == snrm
    ua = hdlc.decode(bytes.fromhex(DLMS_UA_UA))
    assert (ua.kind, ua.destination, ua.source) == ("UA", client, server)
    # 81 80 14, then 05/06 (2 bytes) the information field lengths 128 and 07/08 (4 bytes) the windows 1
    assert hdlc.Parameters.decode(ua.information) == hdlc.Parameters(128, 128, 1, 1)
    aarq = hdlc.decode(bytes.fromhex(DLMS_UA_AARQ))
    assert aarq.kind == "I" and aarq.information.startswith(hdlc.LLC_REQUEST + bytes.fromhex("601D"))
    assert hdlc.Frame(server, client, hdlc.i_control(0, 0), aarq.information).encode() == bytes.fromhex(DLMS_UA_AARQ)


def test_snrm_with_one_byte_addresses_as_gurux_sends_it() -> None:
    # The same SNRM to server 1 on a one-byte address (0x03) from the public client (0x21), and from
    # client 32 (0x41), as Gurux's DLMS client examples send it first (their published traces:
    # "TX: 7E A0 07 03 21 93 0F 01 7E", "7E A0 07 03 41 93 5A 64 7E"), and the UA those traces show,
    # with one-byte parameter values (receive information field 0x3E = 62 bytes).
    public = hdlc.Frame(bytes([0x03]), hdlc.client_address(16), hdlc.SNRM | hdlc.POLL_FINAL)
    assert public.encode() == bytes.fromhex("7EA0070321930F017E")
    reader = hdlc.Frame(bytes([0x03]), hdlc.client_address(32), hdlc.SNRM | hdlc.POLL_FINAL)
    assert reader.encode() == bytes.fromhex("7EA0070341935A647E")
    ua = hdlc.decode(bytes.fromhex("7EA01E210373C37A81801205018006013E07040000000108040000000107227E"))
    assert ua.kind == "UA" and hdlc.Parameters.decode(ua.information) == hdlc.Parameters(128, 62, 1, 1)


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
