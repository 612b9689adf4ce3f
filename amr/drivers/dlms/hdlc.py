"""HDLC frames of IEC 62056-46 (frame format type 3): encode, decode, check.

One frame on the wire::

    7E | A0+S+L | L | dest. address | src. address | control | HCS HCS | information | FCS FCS | 7E
         format (2 bytes: type 3 in the top nibble, S the segmentation bit 0x08,
         L the 11-bit length from the format field to the FCS, flags excluded)

HCS covers format, addresses and control and is present only when an information
field follows; FCS covers everything between the flags. Both are CRC-16/X.25
(poly 0x1021 reflected, init 0xFFFF, final XOR 0xFFFF), sent low byte first.

Addresses end with the byte whose low bit is 1. The client address is one byte
(SAP << 1 | 1). The server address is 1, 2 or 4 bytes: the upper HDLC address (the
logical device, 1 in СПОДЭС) and the lower one (the physical address), each 7 bits
in the 2-byte form and 14 bits (two 7-bit halves) in the 4-byte form.

Control field (P/F bit 0x10): I-frame ``RRR P SSS 0``, RR ``RRR P 0001``, SNRM 0x93,
DISC 0x53, UA 0x73, DM 0x1F, FRMR 0x97.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlms_cosem.crc import CRCCCITT  # type: ignore[import-untyped]

from amr.drivers.dlms import errors

FLAG = 0x7E
FORMAT_TYPE_3 = 0xA000
SEGMENTED = 0x0800
PF = 0x10
SNRM, DISC, UA, DM, FRMR, UI = 0x93, 0x53, 0x73, 0x1F, 0x97, 0x13
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"
_CRC = CRCCCITT()


def crc16_x25(data: bytes) -> bytes:
    """CRC-16/X.25 of `data` as sent: low byte first (check value over b"123456789": 0x906E)."""
    return bytes(_CRC.calculate_for(bytes(data)))  # the library's default order is the wire order


def client_address(sap: int) -> bytes:
    """The one-byte client address of `sap` (16 public, 32 reader, 48 configurator)."""
    if not 0 < sap <= 0x7F:
        raise ValueError(f"client SAP {sap} is outside 1..127")
    return bytes([(sap << 1) | 1])


def server_address(logical: int, physical: int | None, size: int) -> bytes:
    """The server address of `size` bytes (1, 2 or 4) for a logical device and physical address."""
    if size == 1:
        if physical is not None or logical > 0x7F:
            raise ValueError("a 1-byte server address is a logical device 1..127 without physical address")
        return bytes([(logical << 1) | 1])
    lower = physical or 0
    if size == 2:
        if logical > 0x7F or lower > 0x7F:
            raise ValueError("a 2-byte server address has 7-bit parts (0..127)")
        return bytes([logical << 1, (lower << 1) | 1])
    if size == 4:
        if logical > 0x3FFF or lower > 0x3FFF:
            raise ValueError("a 4-byte server address has 14-bit parts (0..16383)")
        return bytes([(logical >> 7) << 1, (logical & 0x7F) << 1, (lower >> 7) << 1, ((lower & 0x7F) << 1) | 1])
    raise ValueError(f"a server address is 1, 2 or 4 bytes, not {size}")


def i_control(ssn: int, rsn: int, poll: bool = True) -> int:
    """The control byte of an information frame with send and receive sequence numbers."""
    return ((rsn & 7) << 5) | (PF if poll else 0) | ((ssn & 7) << 1)


def rr_control(rsn: int) -> int:
    """The control byte of a receive-ready frame (with the poll bit)."""
    return ((rsn & 7) << 5) | PF | 0x01


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame."""

    destination: bytes
    source: bytes
    control: int
    information: bytes = b""
    segmented: bool = False

    @property
    def final(self) -> bool:
        """The P/F bit: the last frame of a window (or a poll)."""
        return bool(self.control & PF)

    @property
    def is_information(self) -> bool:
        """An I-frame: the low bit of the control field is 0."""
        return not self.control & 1

    @property
    def is_rr(self) -> bool:
        """A receive-ready frame."""
        return self.control & 0x0F == 0x01

    @property
    def ssn(self) -> int:
        """N(S) of an I-frame."""
        return (self.control >> 1) & 7

    @property
    def rsn(self) -> int:
        """N(R) of an I- or S-frame."""
        return (self.control >> 5) & 7

    def unnumbered(self) -> int:
        """The control byte with the P/F bit set, for comparing with SNRM, UA, DM, DISC."""
        return self.control | PF

    def encode(self) -> bytes:
        """The frame's bytes, flags included."""
        head_size = 2 + len(self.destination) + len(self.source) + 1  # format, addresses, control
        length = head_size + 2 + (len(self.information) + 2 if self.information else 0)
        if length > 0x7FF:
            raise ValueError(f"an HDLC frame is at most 2047 bytes long, not {length}")
        fmt = FORMAT_TYPE_3 | (SEGMENTED if self.segmented else 0) | length
        head = fmt.to_bytes(2, "big") + self.destination + self.source + bytes([self.control])
        body = head + crc16_x25(head) + self.information if self.information else head
        return bytes([FLAG]) + body + crc16_x25(body) + bytes([FLAG])


def _address(data: bytes, start: int) -> bytes:
    for end in range(start, min(start + 4, len(data))):
        if data[end] & 1:
            address = data[start : end + 1]
            if len(address) not in (1, 2, 4):
                break
            return address
    raise errors.protocol("HDLC frame with an address of neither 1, 2 nor 4 bytes", errors.HDLC_FRAME)


def frame_length(buffer: bytes) -> int | None:
    """Bytes of the frame at the start of `buffer` (flags included) once its format field is in, else None."""
    if len(buffer) < 3:
        return None
    return (int.from_bytes(buffer[1:3], "big") & 0x7FF) + 2


def decode(data: bytes) -> Frame:
    """The frame in `data` (one frame, flags included); `ProtocolError` ``dlms.hdlc_frame`` if it is wrong."""
    if len(data) < 9 or data[0] != FLAG or data[-1] != FLAG:
        raise errors.protocol(f"not an HDLC frame: {data[:16].hex(' ')}", errors.HDLC_FRAME)
    fmt = int.from_bytes(data[1:3], "big")
    if fmt & 0xF000 != FORMAT_TYPE_3 or (fmt & 0x7FF) != len(data) - 2:
        raise errors.protocol(f"HDLC frame format {fmt:04X} does not fit {len(data)} bytes", errors.HDLC_FRAME)
    body = data[1:-1]
    if crc16_x25(body[:-2]) != body[-2:]:
        raise errors.protocol("HDLC frame with a bad FCS", errors.HDLC_FRAME)
    destination = _address(data, 3)
    source = _address(data, 3 + len(destination))
    at = 3 + len(destination) + len(source)
    control = data[at]
    information = b""
    if len(body) > at + 2:  # more than format, addresses, control and FCS: HCS and information follow
        head = data[1 : at + 1]
        if crc16_x25(head) != data[at + 1 : at + 3]:
            raise errors.protocol("HDLC frame with a bad HCS", errors.HDLC_FRAME)
        information = data[at + 3 : -3]
    return Frame(destination, source, control, information, bool(fmt & SEGMENTED))


def parameters(max_info_tx: int, max_info_rx: int, window_tx: int, window_rx: int) -> bytes:
    """The SNRM/UA information field negotiating frame sizes and windows (IEC 62056-46, 6.4.4.4.3.2)."""
    items = b""
    for ident, value in ((5, max_info_tx), (6, max_info_rx), (7, window_tx), (8, window_rx)):
        size = 4 if ident in (7, 8) else 1 if value < 0x100 else 2  # windows are always 4 bytes
        items += bytes([ident, size]) + value.to_bytes(size, "big")
    return bytes([0x81, 0x80, len(items)]) + items


def parse_parameters(information: bytes) -> dict[int, int]:
    """The negotiated values of a UA's information field by parameter id (5, 6, 7, 8); empty when absent."""
    found: dict[int, int] = {}
    if len(information) < 3 or information[0] != 0x81 or information[1] != 0x80:
        return found
    at, end = 3, min(len(information), 3 + information[2])
    while at + 2 <= end:
        ident, size = information[at], information[at + 1]
        found[ident] = int.from_bytes(information[at + 2 : at + 2 + size], "big")
        at += 2 + size
    return found
