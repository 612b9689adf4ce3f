"""HDLC frames of IEC 62056-46 (the DLMS/COSEM data link layer), for the driver and the simulator.

Bytes only: no I/O, no library. A frame that is wrong raises `FrameError` naming what is wrong; the
driver translates it into a `ProtocolError` (``dlms.hdlc_frame``), the simulator ignores the frame.

One frame on the line::

    7E | A0 LL | destination | source | control | HCS lo hi | information | FCS lo hi | 7E
    flag  format   1, 2 or 4     1 byte   1 byte    only with             CRC of all  flag
          type 3   bytes (server  (client)          information           before it
                   address)

* format ``1010 S LLL LLLLLLLL``: frame format type 3 (``1010``), the segmentation bit S (more
  segments of this APDU follow) and the 11-bit frame length, counted from the format field to the
  FCS, both flags excluded;
* addresses: each byte carries 7 address bits and a low "last byte" bit. The client address is
  one byte (SAP << 1 | 1). The server address is the logical device (upper HDLC address) and,
  optionally, the physical device (lower HDLC address): 1 byte (upper only), 2 bytes
  (upper, lower: 7 bits each) or 4 bytes (upper high, upper low, lower high, lower low);
* control: I ``RRR P SSS 0``, RR ``RRR P 0001``, RNR ``RRR P 0101``, SNRM ``100P 0011`` (0x93),
  DISC ``010P 0011`` (0x53), UA ``011F 0011`` (0x73), DM ``000F 1111`` (0x1F), FRMR 0x97;
* HCS and FCS: CRC-16/X.25 (poly 0x1021 reflected, init 0xFFFF, final XOR 0xFFFF), low byte
  first. There is no HCS when there is no information field.

Published examples the tests check these codecs against (GXDLMSDirector and Gurux Python client
traces, public at https://pastebin.com/Vvs6PqXK and
https://gist.github.com/knogi/f3d4853b936164882e5ed653498e7b61): the SNRM ``7E A0 07 03 21 93 0F 01 7E``
(client SAP 16 to logical device 1) and ``7E A0 14 03 21 93 63 E7 81 80 08 05 02 03 F2 06 02 03 F2
03 F0 7E`` (proposing 1010-byte information fields), answered by the UA ``7E A0 20 21 03 73 73 98
81 80 14 05 02 03 F2 06 02 03 F2 07 04 00 00 00 01 08 04 00 00 00 01 0A 75 7E``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amr.protocols.crc import crc16_x25 as crc16_x25  # the HCS/FCS, also for users of this module

FLAG = 0x7E
FORMAT_TYPE_3 = 0xA000
SEGMENTED = 0x0800
LENGTH_MASK = 0x07FF

SNRM, DISC, UA, DM, FRMR, UI = 0x83, 0x43, 0x63, 0x0F, 0x87, 0x03  # control bytes without the P/F bit
POLL_FINAL = 0x10
RR, RNR = 0x01, 0x05  # supervisory frames, low nibble (with N(R) in the upper three bits)

LLC_REQUEST = b"\xe6\xe6\x00"  # LLC header of a client's APDU (destination LSAP, source LSAP, quality)
LLC_RESPONSE = b"\xe6\xe7\x00"

DEFAULT_INFO_LENGTH = 128  # the information field length both sides assume until SNRM/UA say otherwise
DEFAULT_WINDOW = 1


def _check(data: bytes) -> bytes:
    return crc16_x25(data).to_bytes(2, "little")


class FrameError(ValueError):
    """Bytes that are not a whole, well-formed HDLC frame (a meter ignores them)."""


def client_address(sap: int) -> bytes:
    """The one-byte client address of `sap` (16 public, 32 reader, 48 configurator)."""
    if not 0 < sap <= 0x7F:
        raise ValueError(f"client SAP {sap} is outside 1..127")
    return bytes([(sap << 1) | 1])


def server_address(logical: int, physical: int | None, size: int) -> bytes:
    """The server address of `size` bytes (1, 2 or 4) of a logical device and physical address."""
    if size == 1 and (physical is not None or logical > 0x7F):
        raise ValueError("a 1-byte server address is a logical device 1..127 without physical address")
    if size == 2 and (logical > 0x7F or (physical or 0) > 0x7F):
        raise ValueError("a 2-byte server address has 7-bit parts (0..127)")
    if size == 4 and (logical > 0x3FFF or (physical or 0) > 0x3FFF):
        raise ValueError("a 4-byte server address has 14-bit parts (0..16383)")
    if size not in (1, 2, 4):
        raise ValueError(f"a server address is 1, 2 or 4 bytes, not {size}")
    return ServerAddress(logical, physical, size).encode()


def i_control(ssn: int, rsn: int, poll: bool = True) -> int:
    """The control byte of an information frame with send and receive sequence numbers."""
    return ((rsn & 7) << 5) | (POLL_FINAL if poll else 0) | ((ssn & 7) << 1)


def rr_control(rsn: int) -> int:
    """The control byte of a receive-ready frame (with the poll bit)."""
    return ((rsn & 7) << 5) | POLL_FINAL | RR


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """The server side of a frame: logical device (upper) and physical device (lower, None when absent)."""

    logical: int
    physical: int | None
    size: int  # 1, 2 or 4 bytes on the wire

    def encode(self) -> bytes:
        """The address bytes, in the same size they came in."""
        if self.size == 1:
            return bytes((self.logical << 1 | 1,))
        physical = self.physical or 0
        if self.size == 2:
            return bytes(((self.logical & 0x7F) << 1, (physical & 0x7F) << 1 | 1))
        return bytes(
            ((self.logical >> 7) << 1, (self.logical & 0x7F) << 1, (physical >> 7) << 1, (physical & 0x7F) << 1 | 1)
        )

    @classmethod
    def decode(cls, raw: bytes) -> ServerAddress:
        """`raw`: 1, 2 or 4 address bytes, only the last with its low bit set."""
        parts = [b >> 1 for b in raw]
        if len(raw) == 1:
            return cls(parts[0], None, 1)
        if len(raw) == 2:
            return cls(parts[0], parts[1], 2)
        if len(raw) == 4:
            return cls(parts[0] << 7 | parts[1], parts[2] << 7 | parts[3], 4)
        raise FrameError(f"a server address is 1, 2 or 4 bytes, not {len(raw)}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One HDLC frame; `destination` and `source` are the raw address bytes."""

    destination: bytes
    source: bytes
    control: int
    information: bytes = b""
    segmented: bool = False

    @property
    def kind(self) -> str:
        """ "I", "RR", "RNR", "SNRM", "DISC", "UA", "DM", "FRMR", "UI" or "?"."""
        c = self.control
        if not c & 1:
            return "I"
        if c & 0x03 == 0x01:
            return {RR: "RR", RNR: "RNR"}.get(c & 0x0F, "?")
        names = {SNRM: "SNRM", DISC: "DISC", UA: "UA", DM: "DM", FRMR: "FRMR", UI: "UI"}
        return names.get(c & ~POLL_FINAL & 0xFF, "?")

    @property
    def poll(self) -> bool:
        """The P/F bit."""
        return bool(self.control & POLL_FINAL)

    @property
    def send_sequence(self) -> int:
        """N(S) of an I-frame."""
        return (self.control >> 1) & 0x07

    @property
    def receive_sequence(self) -> int:
        """N(R) of an I-frame or RR/RNR."""
        return (self.control >> 5) & 0x07

    def encode(self) -> bytes:
        """The frame with its flags, HCS (when there is information) and FCS."""
        size = 2 + len(self.destination) + len(self.source) + 1 + 2  # format, addresses, control, FCS
        if self.information:
            size += 2 + len(self.information)
        if size > LENGTH_MASK:
            raise FrameError(f"an HDLC frame holds at most {LENGTH_MASK} bytes; this one would be {size}")
        fmt = FORMAT_TYPE_3 | (SEGMENTED if self.segmented else 0) | size
        header = fmt.to_bytes(2, "big") + self.destination + self.source + bytes((self.control,))
        body = header + (_check(header) + self.information if self.information else b"")
        return bytes((FLAG,)) + body + _check(body) + bytes((FLAG,))


def _address(data: bytes, start: int, limit: int) -> int:
    """The index after the address that begins at `start` (its last byte has the low bit set)."""
    for end in range(start, min(start + 4, limit)):
        if data[end] & 1:
            if end + 1 - start == 3:
                break
            return end + 1
    raise FrameError("an address of neither 1, 2 nor 4 bytes (its last byte has the low bit set)")


def decode(data: bytes) -> Frame:
    """A frame from its bytes, flags included; FrameError names what is wrong."""
    if len(data) < 9 or data[0] != FLAG or data[-1] != FLAG:
        raise FrameError("an HDLC frame starts and ends with 7E and has at least 9 bytes")
    fmt = int.from_bytes(data[1:3], "big")
    if fmt & 0xF000 != FORMAT_TYPE_3:
        raise FrameError(f"frame format {fmt >> 12:X}: only type 3 (A) is used by DLMS")
    if fmt & LENGTH_MASK != len(data) - 2:
        raise FrameError(f"the format field says {fmt & LENGTH_MASK} bytes, the frame has {len(data) - 2}")
    if data[-3:-1] != _check(data[1:-3]):
        raise FrameError("bad FCS")
    middle = _address(data, 3, len(data) - 3)
    end = _address(data, middle, len(data) - 3)
    control = data[end]
    info_start = end + 1
    information = b""
    if len(data) - 3 > info_start:  # more than control + FCS: HCS and information
        if data[info_start : info_start + 2] != _check(data[1:info_start]):
            raise FrameError("bad HCS")
        information = bytes(data[info_start + 2 : -3])
    return Frame(bytes(data[3:middle]), bytes(data[middle:end]), control, information, bool(fmt & SEGMENTED))


def frame_length(buffer: bytes) -> int | None:
    """Bytes of the frame at the start of `buffer` (flags included) once its format field is in, else None."""
    if len(buffer) < 3:
        return None
    return (int.from_bytes(buffer[1:3], "big") & LENGTH_MASK) + 2


def take_frame(buffer: bytearray) -> bytes | None:
    """Cut the first whole frame (by its format field's length) out of `buffer`; skip noise before a flag.

    Frames may follow one another with two flags (``7E ... 7E 7E ... 7E``) or share one (``7E ... 7E ... 7E``).
    """
    while True:
        start = buffer.find(FLAG)
        if start < 0:
            buffer.clear()
            return None
        del buffer[:start]
        while len(buffer) >= 2 and buffer[1] == FLAG:  # two flags: the first closed a frame we do not have
            del buffer[0]
        if len(buffer) < 3:
            return None
        fmt = int.from_bytes(buffer[1:3], "big")
        if fmt & 0xF000 != FORMAT_TYPE_3:
            del buffer[0]
            continue
        size = (fmt & LENGTH_MASK) + 2
        if len(buffer) < size:
            return None
        if buffer[size - 1] != FLAG:
            del buffer[0]
            continue
        frame = bytes(buffer[:size])
        del buffer[: size - 1]  # the closing flag may open the next frame (one flag between frames)
        return frame


@dataclass(frozen=True, slots=True)
class Parameters:
    """HDLC parameters of SNRM/UA (IEC 62056-46 6.4.4.4.3.2), seen from the side that sends them."""

    max_info_transmit: int = DEFAULT_INFO_LENGTH  # longest information field the server sends
    max_info_receive: int = DEFAULT_INFO_LENGTH  # longest one the server accepts
    window_transmit: int = DEFAULT_WINDOW
    window_receive: int = DEFAULT_WINDOW

    def encode(self) -> bytes:
        """The UA's information field::

        81 80 LL                format identifier, group identifier, group length
        05 n <max info tx>      05/06: maximum information field length transmit/receive (1 or 2 bytes)
        06 n <max info rx>
        07 04 <window tx>       07/08: window size transmit/receive (4 bytes)
        08 04 <window rx>
        """

        def value(code: int, number: int, size: int) -> bytes:
            return bytes((code, size)) + number.to_bytes(size, "big")

        def short(number: int) -> int:
            return 1 if number < 0x100 else 2

        group = (
            value(0x05, self.max_info_transmit, short(self.max_info_transmit))
            + value(0x06, self.max_info_receive, short(self.max_info_receive))
            + value(0x07, self.window_transmit, 4)
            + value(0x08, self.window_receive, 4)
        )
        return bytes((0x81, 0x80, len(group))) + group

    @classmethod
    def decode(cls, information: bytes) -> Parameters:
        """The parameters of an SNRM's or UA's information field; a value left out (or no field) is the default."""
        found = {0x05: DEFAULT_INFO_LENGTH, 0x06: DEFAULT_INFO_LENGTH, 0x07: DEFAULT_WINDOW, 0x08: DEFAULT_WINDOW}
        if information:
            if len(information) < 3 or information[0] != 0x81 or information[1] != 0x80:
                raise FrameError("HDLC parameters start with 81 80 and the group length")
            group, position = information[3 : 3 + information[2]], 0
            while position + 2 <= len(group):
                code, size = group[position], group[position + 1]
                found[code] = int.from_bytes(group[position + 2 : position + 2 + size], "big")
                position += 2 + size
        return cls(found[0x05], found[0x06], found[0x07], found[0x08])


def negotiate(snrm_information: bytes, own: Parameters) -> Parameters:
    """What the server uses after an SNRM: each value the smaller of the client's proposal and `own`.

    The client's transmit values are the server's receive values and the other way round; a value
    the client leaves out is the default (128 bytes, window 1).
    """
    proposed = Parameters.decode(snrm_information)
    return Parameters(
        max_info_transmit=min(proposed.max_info_receive, own.max_info_transmit),
        max_info_receive=min(proposed.max_info_transmit, own.max_info_receive),
        window_transmit=min(proposed.window_receive, own.window_transmit),
        window_receive=min(proposed.window_transmit, own.window_receive),
    )
