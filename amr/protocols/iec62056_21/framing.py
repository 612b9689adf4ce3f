"""IEC 62056-21 framing: control characters, the block check character and block reception.

Characters: SOH 0x01, STX 0x02, ETX 0x03, EOT 0x04 (end of a partial block),
ACK 0x06, NAK 0x15, CR 0x0D, LF 0x0A. Text is 7-bit ASCII: the port runs 7E1
(7 data bits, even parity, 1 stop bit); parity is the serial port's job, so the
bytes seen here have bit 7 clear.

BCC (block check character): XOR of every byte after the first SOH or STX, up
to and including ETX (or EOT)::

    STX  '1'  '.'  '8'  ...  '!'  CR  LF  ETX  BCC
         \\______________ XOR ______________/
"""

from __future__ import annotations

from amr.errors import ProtocolError

SOH = 0x01  # start of header: begins a command message
STX = 0x02  # start of text: begins a data block
ETX = 0x03  # end of text: ends a block; the BCC follows
EOT = 0x04  # end of transmission: ends a partial block; the BCC follows
ACK = 0x06  # acknowledge
NAK = 0x15  # negative acknowledge: repeat
CRLF = "\r\n"
END_OF_READOUT = "!" + CRLF  # last line of a readout data block


def bcc(data: bytes | bytearray) -> int:
    """The XOR of all bytes of `data` (pass the bytes after SOH/STX up to ETX)."""
    result = 0
    for byte in data:
        result ^= byte
    return result


def with_bcc(start: int, body: bytes) -> bytes:
    """``start + body + BCC``, the BCC taken over `body` (which ends with ETX or EOT)."""
    return bytes((start,)) + body + bytes((bcc(body),))


def check_block(block: bytes | bytearray) -> bytes:
    """The bytes between the start character and ETX/EOT, after checking the BCC.

    `block` is one whole block: SOH or STX, contents, ETX or EOT, BCC. Raises
    `ProtocolError` naming the BCC received and the one computed.
    """
    if len(block) < 3:
        raise ProtocolError(f"a block has at least 3 bytes; got {bytes(block)!r}")
    if block[0] not in (SOH, STX):
        raise ProtocolError(f"a block starts with SOH or STX; got 0x{block[0]:02X}")
    if block[-2] not in (ETX, EOT):
        raise ProtocolError(
            f"a block ends with ETX or EOT and a BCC; got 0x{block[-2]:02X} 0x{block[-1]:02X}"
        )
    computed = bcc(block[1:-1])
    if computed != block[-1]:
        raise ProtocolError(
            f"BCC mismatch: block carries 0x{block[-1]:02X}, computed 0x{computed:02X}", code="iec.bcc"
        )
    return bytes(block[1:-2])


def ascii_text(data: bytes, what: str) -> str:
    """`data` as text; `ProtocolError` naming `what` when a byte has bit 7 set (a port not at 7E1)."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(
            f"{what} has bytes above 0x7F: is the port set to 7E1 (7 data bits, even parity)?"
        ) from None


class BlockReceiver:
    """Collects bytes from the line until one block is complete.

    A block is SOH or STX, any bytes, ETX or EOT, then one BCC byte. A lone ACK
    or NAK (the meter's answer to a command) is returned as a one-byte block.
    Bytes after a complete block are kept for the next one. Any other first
    byte raises `ProtocolError`, as does a block longer than `max_length`.
    """

    def __init__(self, max_length: int = 65536) -> None:
        """Start empty; refuse blocks longer than `max_length` bytes."""
        self.max_length = max_length
        self._buffer = bytearray()
        self._scanned = 1  # bytes of the current block already searched for ETX/EOT

    def feed(self, data: bytes | bytearray) -> bytes | None:
        """Add received bytes; return the first complete block, else None."""
        self._buffer += data
        return self.next_block()

    def next_block(self) -> bytes | None:
        """Take the next complete block out of the bytes already received, if any."""
        if not self._buffer:
            return None
        first = self._buffer[0]
        if first in (ACK, NAK):
            return self._take(1)
        if first not in (SOH, STX):
            raise ProtocolError(f"expected SOH, STX, ACK or NAK at the start of a message; got 0x{first:02X}")
        for index in range(self._scanned, len(self._buffer) - 1):
            if self._buffer[index] in (ETX, EOT):
                return self._take(index + 2)  # the end character and the BCC after it
        self._scanned = max(1, len(self._buffer) - 1)
        if len(self._buffer) > self.max_length:
            raise ProtocolError(f"no ETX within {self.max_length} bytes of a block")
        return None

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet returned as a block."""
        return bytes(self._buffer)

    def reset(self) -> None:
        """Forget everything received."""
        self._buffer.clear()
        self._scanned = 1

    def _take(self, length: int) -> bytes:
        block = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._scanned = 1
        return block
