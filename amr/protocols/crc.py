"""CRC-16/Modbus, the checksum of Modbus RTU and of the Mercury 230/234 protocol, and CRC-16/X.25
(the HCS and FCS of DLMS HDLC frames, `crc16_x25`).

Parameters (the "CRC-16/MODBUS" entry of the CRC catalogue): width 16,
polynomial 0x8005 processed bit-reflected (0xA001), initial value 0xFFFF,
input and output reflected, no final XOR. Check value: the CRC of the ASCII
bytes ``123456789`` is 0x4B37.

On the wire the CRC follows the data, **low byte first**::

    +------ data ------+--------+--------+
    | b0 b1 ... bn-1   | CRC lo | CRC hi |
    +------------------+--------+--------+

e.g. the Modbus request ``01 03 00 00 00 0A`` has CRC 0xCDC5, sent as ``C5 CD``.
A frame that ends with its own correct CRC has a CRC of zero over the whole
frame (the "residue" is 0), which `crc_ok` uses.
"""

from __future__ import annotations

from amr.errors import ProtocolError

POLYNOMIAL = 0xA001  # 0x8005 bit-reflected
INITIAL = 0xFFFF
CRC_LENGTH = 2  # bytes


X25_POLYNOMIAL = 0x8408  # CRC-16/X.25: 0x1021 bit-reflected, initial 0xFFFF, final XOR 0xFFFF


def _make_table(polynomial: int = POLYNOMIAL) -> tuple[int, ...]:
    """The 256 CRC remainders of one byte, computed bit by bit once at import."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()
_X25_TABLE = _make_table(X25_POLYNOMIAL)


def crc16_modbus(data: bytes | bytearray, crc: int = INITIAL) -> int:
    """The CRC-16/Modbus of `data` as an integer 0..0xFFFF.

    `crc` lets a long message be checked in pieces: pass the result for the
    first piece as `crc` for the next.
    """
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def crc16_x25(data: bytes | bytearray) -> int:
    """CRC-16/X.25 (IBM-SDLC) of `data`; check value over ``123456789``: 0x906E, sent low byte first."""
    crc = INITIAL
    for byte in data:
        crc = (crc >> 8) ^ _X25_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def crc_bytes(data: bytes | bytearray) -> bytes:
    """The two CRC bytes of `data` as transmitted: low byte, then high byte."""
    return crc16_modbus(data).to_bytes(CRC_LENGTH, "little")


def append_crc(data: bytes | bytearray) -> bytes:
    """`data` followed by its CRC, low byte first: a frame ready to send."""
    return bytes(data) + crc_bytes(data)


def crc_ok(frame: bytes | bytearray) -> bool:
    """True when `frame` ends with the correct CRC of the bytes before it."""
    return len(frame) > CRC_LENGTH and crc16_modbus(frame) == 0


def strip_crc(frame: bytes | bytearray) -> bytes:
    """The data of `frame` without its CRC; raises `ProtocolError` if the CRC is wrong."""
    if len(frame) <= CRC_LENGTH:
        raise ProtocolError(f"frame of {len(frame)} bytes is too short to carry data and a 2-byte CRC")
    data = bytes(frame[:-CRC_LENGTH])
    expected = crc_bytes(data)
    received = bytes(frame[-CRC_LENGTH:])
    if received != expected:
        raise ProtocolError(
            f"CRC mismatch: frame ends with {received.hex(' ').upper()}, "
            f"the CRC of its data is {expected.hex(' ').upper()} (low byte first)",
            code="crc",
        )
    return data
