"""CRC-16/Modbus against published vectors."""

from __future__ import annotations

import pytest

from amr.errors import ProtocolError
from amr.protocols.crc import append_crc, crc16_modbus, crc_bytes, crc_ok, strip_crc


def test_catalogue_check_value() -> None:
    # CRC catalogue entry CRC-16/MODBUS (e.g. docs.rs crc-catalog, CRC_16_MODBUS;
    # CODESYS CAA Memory CRC16_Modbus): check = 0x4B37 for ASCII "123456789".
    assert crc16_modbus(b"123456789") == 0x4B37


@pytest.mark.parametrize(
    ("frame_hex", "crc_hex"),
    [
        # Modbus RTU read holding registers: slave 1, address 0, 10 registers,
        # the textbook example transmitted as ... C5 CD.
        ("01 03 00 00 00 0A", "C5 CD"),
        # Read coils slave 1, 2 coils, and its answer, as published with their
        # CRCs in a Modbus RTU function-code tutorial (blog.csdn.net/u013763970,
        # article 122594260): "BDCB" and "D049", low byte first.
        ("01 01 00 00 00 02", "BD CB"),
        ("01 01 01 02", "D0 49"),
    ],
)
def test_published_frames(frame_hex: str, crc_hex: str) -> None:
    data = bytes.fromhex(frame_hex)
    assert crc_bytes(data) == bytes.fromhex(crc_hex)
    assert append_crc(data) == data + bytes.fromhex(crc_hex)


def test_low_byte_first() -> None:
    assert crc16_modbus(bytes.fromhex("01 03 00 00 00 0A")) == 0xCDC5


def test_incremental() -> None:
    first = crc16_modbus(b"12345")
    assert crc16_modbus(b"6789", first) == 0x4B37


def test_crc_ok_and_strip() -> None:
    frame = append_crc(b"\x01\x03\x00\x00\x00\x0a")
    assert crc_ok(frame)
    assert strip_crc(frame) == b"\x01\x03\x00\x00\x00\x0a"
    assert strip_crc(bytearray(frame)) == b"\x01\x03\x00\x00\x00\x0a"


def test_bad_crc_names_expected_and_received() -> None:
    frame = bytes.fromhex("01 03 00 00 00 0A CD C5")  # bytes swapped: high byte first
    assert not crc_ok(frame)
    with pytest.raises(ProtocolError, match=r"ends with CD C5.*is C5 CD"):
        strip_crc(frame)


@pytest.mark.parametrize("frame", [b"", b"\x01", b"\x01\x02"])
def test_too_short(frame: bytes) -> None:
    assert not crc_ok(frame)
    with pytest.raises(ProtocolError, match="too short"):
        strip_crc(frame)


def test_empty_data() -> None:
    assert crc16_modbus(b"") == 0xFFFF
