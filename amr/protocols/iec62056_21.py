"""IEC 62056-21 (ex IEC 61107) protocol mode C: messages, data blocks and BCC.

A mode C readout, with who sends what (HHU = the reading side)::

    HHU    /?address!<CR><LF>                  sign-on, at 300 baud
    meter  /XXXZ[\\W]ident<CR><LF>              identification
    HHU    <ACK>VZY<CR><LF>                    option select: V protocol control
                                               ("0" normal), Z baud rate, Y mode
                                               ("0" data readout, "1" programming)
           ... both sides switch to the baud rate of Z ...
    meter  <STX>data lines!<CR><LF><ETX><BCC>  readout (mode Y = "0")

In programming mode (Y = "1") the meter sends ``<SOH>P0<STX>(seed)<ETX><BCC>``,
the HHU answers with a password command ``<SOH>P1<STX>(password)<ETX><BCC>``,
the meter with ``<ACK>`` (or ``<NAK>``), and a break ``<SOH>B0<ETX><BCC>`` ends
the session.

Characters: SOH 0x01, STX 0x02, ETX 0x03, EOT 0x04 (end of a partial block),
ACK 0x06, NAK 0x15, CR 0x0D, LF 0x0A. Text is 7-bit ASCII: the port runs 7E1
(7 data bits, even parity, 1 stop bit); parity is the serial port's job, so the
bytes seen here have bit 7 clear.

Baud-rate character Z in mode C::

    Z     0    1    2     3     4     5     6
    baud  300  600  1200  2400  4800  9600  19200

BCC (block check character): XOR of every byte after the first SOH or STX, up
to and including ETX (or EOT)::

    STX  '1'  '.'  '8'  ...  '!'  CR  LF  ETX  BCC
         \\______________ XOR ______________/

A data block is data lines of data sets ``address(value*unit)``, e.g.
``1.8.0(001234.567*kWh)`` or ``1-0:1.8.0*255(001234.567*kWh)``; a line may hold
several data sets, each line ends with CR LF, and a readout ends with ``!``
CR LF before ETX.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from amr.domain import Channel, Values
from amr.errors import ProtocolError
from amr.protocols import obis
from amr.protocols.units import to_wh, unit_fits_channel

SOH = 0x01  # start of header: begins a command message
STX = 0x02  # start of text: begins a data block
ETX = 0x03  # end of text: ends a block; the BCC follows
EOT = 0x04  # end of transmission: ends a partial block; the BCC follows
ACK = 0x06  # acknowledge
NAK = 0x15  # negative acknowledge: repeat
CRLF = "\r\n"
END_OF_READOUT = "!" + CRLF  # last line of a readout data block

BAUD_RATES: dict[str, int] = {
    "0": 300,
    "1": 600,
    "2": 1200,
    "3": 2400,
    "4": 4800,
    "5": 9600,
    "6": 19200,
}
BAUD_CHARS: dict[int, str] = {rate: char for char, rate in BAUD_RATES.items()}

MODE_READOUT = "0"  # option select Y: data readout
MODE_PROGRAMMING = "1"  # option select Y: programming mode
MODE_BINARY = "2"  # option select Y: binary mode (HDLC, protocol mode E)
PROTOCOL_NORMAL = "0"  # option select V: normal protocol procedure
PROTOCOL_SECONDARY = "1"  # option select V: secondary protocol procedure

REACTION_TIME_FAST_MS = 20  # third manufacturer letter in lower case
REACTION_TIME_NORMAL_MS = 200  # third manufacturer letter in upper case

_ADDRESS = re.compile(r"[0-9A-Za-z ]{0,32}")  # device address: up to 32 characters
_IDENTIFICATION = re.compile(
    r"/(?P<manufacturer>[A-Za-z]{3})(?P<baud>[ -~])(?:\\(?P<enhanced>[ -~]))?"
    r"(?P<ident>[ \x22-\x2e\x30-\x7e]+)\r\n"  # printable ASCII except '!' and '/'
)
_DATA_SET = re.compile(r"(?P<address>[^()]*)\((?P<body>[^()]*)\)")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


# --- BCC --------------------------------------------------------------------


def bcc(data: bytes | bytearray) -> int:
    """The XOR of all bytes of `data` (pass the bytes after SOH/STX up to ETX)."""
    result = 0
    for byte in data:
        result ^= byte
    return result


def _with_bcc(start: int, body: bytes) -> bytes:
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


def _ascii(data: bytes, what: str) -> str:
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


# --- sign-on, identification, option select --------------------------------


def encode_sign_on(address: str = "") -> bytes:
    """``/?address!<CR><LF>``; without an address every meter on the line answers."""
    if _ADDRESS.fullmatch(address) is None:
        raise ValueError(f"a device address is up to 32 letters, digits or spaces; got {address!r}")
    return f"/?{address}!{CRLF}".encode("ascii")


def decode_sign_on(message: bytes) -> str:
    """The device address of a sign-on request ("" when none was given)."""
    text = _ascii(message, "sign-on request")
    if not (text.startswith("/?") and text.endswith("!" + CRLF)):
        raise ProtocolError(f"a sign-on request is /?address!<CR><LF>; got {text!r}")
    address = text[2:-3]
    if _ADDRESS.fullmatch(address) is None:
        raise ProtocolError(f"bad device address in sign-on request: {address!r}")
    return address


@dataclass(frozen=True, slots=True)
class Identification:
    """The meter's identification message ``/XXXZ[\\W]ident<CR><LF>``."""

    manufacturer: str  # three letters, e.g. "LGZ", "ISk", "EMH"
    baud_char: str  # Z, "0".."6" in mode C
    identification: str  # up to 16 printable characters, e.g. "ZMF100AC.M23"
    enhanced: str | None = None  # W after a backslash, e.g. "2" (mode E capable)

    @property
    def baud_rate(self) -> int:
        """The highest baud rate the meter offers, from Z."""
        return BAUD_RATES[self.baud_char]

    @property
    def reaction_time_ms(self) -> int:
        """The meter's minimum reaction time: 20 ms if the third letter is lower case."""
        fast = self.manufacturer[2].islower()
        return REACTION_TIME_FAST_MS if fast else REACTION_TIME_NORMAL_MS


def encode_identification(ident: Identification) -> bytes:
    """The identification message as the meter sends it."""
    if len(ident.manufacturer) != 3 or not ident.manufacturer.isalpha():
        raise ValueError(f"manufacturer is three letters; got {ident.manufacturer!r}")
    if ident.baud_char not in BAUD_RATES:
        raise ValueError(f"mode C baud character is 0..6; got {ident.baud_char!r}")
    enhanced = "" if ident.enhanced is None else "\\" + ident.enhanced
    text = f"/{ident.manufacturer}{ident.baud_char}{enhanced}{ident.identification}{CRLF}"
    if _IDENTIFICATION.fullmatch(text) is None or not text.isascii():
        raise ValueError(f"identification {ident.identification!r} is not printable ASCII")
    return text.encode("ascii")


def decode_identification(message: bytes) -> Identification:
    """Parse ``/XXXZ[\\W]ident<CR><LF>``; raises `ProtocolError` if it is not mode C."""
    text = _ascii(message, "identification message")
    match = _IDENTIFICATION.fullmatch(text)
    if match is None:
        raise ProtocolError(
            f"an identification message is /XXXZident<CR><LF> "
            f"(XXX three letters, Z the baud character); got {text!r}"
        )
    if match["baud"] not in BAUD_RATES:
        raise ProtocolError(
            f"baud character {match['baud']!r} is not protocol mode C (0..6) "
            f"in identification {text.strip()!r}"
        )
    return Identification(
        manufacturer=match["manufacturer"],
        baud_char=match["baud"],
        identification=match["ident"],
        enhanced=match["enhanced"],
    )


@dataclass(frozen=True, slots=True)
class OptionSelect:
    """The acknowledgement / option select message ``<ACK>VZY<CR><LF>``."""

    baud_char: str  # Z: the baud rate to switch to
    mode: str = MODE_READOUT  # Y
    protocol_control: str = PROTOCOL_NORMAL  # V

    @property
    def baud_rate(self) -> int:
        """The baud rate both sides switch to after this message."""
        return BAUD_RATES[self.baud_char]


def encode_option_select(
    baud_rate: int, mode: str = MODE_READOUT, protocol_control: str = PROTOCOL_NORMAL
) -> bytes:
    """``<ACK> V Z Y <CR><LF>``, e.g. 06 '0' '5' '0' CR LF for a readout at 9600 baud."""
    if baud_rate not in BAUD_CHARS:
        raise ValueError(f"mode C baud rates are {sorted(BAUD_CHARS)}; got {baud_rate}")
    if len(mode) != 1 or len(protocol_control) != 1:
        raise ValueError("mode and protocol control are one character each")
    text = f"{protocol_control}{BAUD_CHARS[baud_rate]}{mode}{CRLF}"
    return bytes((ACK,)) + text.encode("ascii")


def decode_option_select(message: bytes) -> OptionSelect:
    """Parse ``<ACK>VZY<CR><LF>`` as the meter receives it."""
    if len(message) != 6 or message[0] != ACK or message[4:] != CRLF.encode():
        raise ProtocolError(f"an option select message is <ACK>VZY<CR><LF>; got {message!r}")
    text = _ascii(message[1:4], "option select message")
    control, baud, mode = text[0], text[1], text[2]
    if baud not in BAUD_RATES:
        raise ProtocolError(f"baud character {baud!r} is not mode C (0..6)")
    return OptionSelect(baud_char=baud, mode=mode, protocol_control=control)


# --- command messages (programming mode) ------------------------------------


@dataclass(frozen=True, slots=True)
class CommandMessage:
    """``<SOH>C D [<STX>data]<ETX><BCC>``: e.g. P1 password, R5 read, B0 break."""

    command: str  # C: "P" password, "W" write, "R" read, "E" execute, "B" break
    command_type: str  # D: e.g. "1" for password P1, "0" for break B0
    data: str | None = None  # e.g. "(00000000)", "0.9.1()"; None for B0


def encode_command(message: CommandMessage) -> bytes:
    """The bytes of a command message with its BCC."""
    if len(message.command) != 1 or len(message.command_type) != 1:
        raise ValueError("command and command type are one character each")
    body = message.command + message.command_type
    if message.data is not None:
        body += chr(STX) + message.data
    return _with_bcc(SOH, body.encode("ascii") + bytes((ETX,)))


def encode_password(password: str, kind: str = "1") -> bytes:
    """``<SOH>P1<STX>(password)<ETX><BCC>``; `kind` "2" for an encrypted password."""
    return encode_command(CommandMessage("P", kind, f"({password})"))


def encode_break() -> bytes:
    """``<SOH>B0<ETX><BCC>`` (bytes 01 42 30 03 71): end the session."""
    return encode_command(CommandMessage("B", "0"))


def decode_command(block: bytes) -> CommandMessage:
    """Parse a command message after checking its BCC."""
    if not block or block[0] != SOH:
        raise ProtocolError(f"a command message starts with SOH; got {block[:1]!r}")
    text = _ascii(check_block(block), "command message")
    if len(text) < 2:
        raise ProtocolError(f"a command message has a command and a type; got {text!r}")
    command, command_type, rest = text[0], text[1], text[2:]
    if not rest:
        return CommandMessage(command, command_type)
    if rest[0] != chr(STX):
        raise ProtocolError(f"command data must follow STX; got {rest!r}")
    return CommandMessage(command, command_type, rest[1:])


# --- data sets and data blocks -----------------------------------------------


@dataclass(frozen=True, slots=True)
class DataSet:
    """One data set ``address(value*unit)``; unit None when the value has none."""

    address: str  # e.g. "1.8.0" or "1-0:1.8.0*255"; "" when left out
    value: str  # as sent, e.g. "001234.567", "9F139CC2", ""
    unit: str | None = None  # e.g. "kWh", "kvarh", "Imp/kWh"

    def format(self) -> str:
        """The data set as sent: ``1.8.0(001234.567*kWh)``."""
        for part, name, forbidden in ((self.address, "address", "()!"), (self.value, "value", "()*!")):
            if any(c in part for c in forbidden) or not part.isascii() or not part.isprintable():
                raise ValueError(f"data set {name} {part!r} has a character not allowed there")
        unit = "" if self.unit is None else f"*{self.unit}"
        if any(c in unit for c in "()") or not unit.isascii() or not unit.isprintable():
            raise ValueError(f"data set unit {self.unit!r} has a character not allowed there")
        return f"{self.address}({self.value}{unit})"

    @property
    def number(self) -> Decimal | None:
        """The value as an exact decimal, or None when it is not a plain number."""
        text = self.value.strip()
        return Decimal(text) if _NUMBER.fullmatch(text) else None


def parse_data_line(line: str) -> list[DataSet]:
    """The data sets of one data line (without its CR LF)."""
    data_sets: list[DataSet] = []
    position = 0
    while position < len(line):
        match = _DATA_SET.match(line, position)
        if match is None:
            raise ProtocolError(f"cannot read a data set at {line[position:]!r} in line {line!r}")
        value, star, unit = match["body"].partition("*")
        data_sets.append(DataSet(match["address"], value, unit if star else None))
        position = match.end()
    return data_sets


def _parse_block_text(text: str) -> list[DataSet]:
    data_sets: list[DataSet] = []
    for line in text.split(CRLF):
        data_sets.extend(parse_data_line(line))
    return data_sets


def decode_readout(block: bytes) -> list[DataSet]:
    """The data sets of a readout ``<STX>lines!<CR><LF><ETX><BCC>``, BCC checked."""
    if not block or block[0] != STX:
        raise ProtocolError(f"a readout starts with STX; got {block[:1]!r}")
    if block[-2:-1] != bytes((ETX,)):
        raise ProtocolError("a readout ends with ETX and a BCC (EOT marks a partial block)")
    text = _ascii(check_block(block), "readout")
    if not text.endswith(END_OF_READOUT):
        raise ProtocolError(f"a readout ends with '!' CR LF before ETX; got {text[-10:]!r}")
    return _parse_block_text(text[: -len(END_OF_READOUT)])


def decode_data_message(block: bytes) -> list[DataSet]:
    """The data sets of a programming-mode answer ``<STX>data<ETX><BCC>``, BCC checked."""
    if not block or block[0] != STX:
        raise ProtocolError(f"a data message starts with STX; got {block[:1]!r}")
    text = _ascii(check_block(block), "data message")
    return _parse_block_text(text.removesuffix(CRLF))


def encode_readout(lines: Iterable[str | DataSet]) -> bytes:
    """A readout block: each item one line (a `DataSet`, or a preformatted line of data sets)."""
    text = ""
    for line in lines:
        formatted = line.format() if isinstance(line, DataSet) else line
        if not (formatted.isascii() and formatted.isprintable()) or "!" in formatted:
            raise ValueError(f"data line {formatted!r} is not printable ASCII without '!'")
        try:
            parse_data_line(formatted)  # refuse what a reader could not read back
        except ProtocolError as error:
            raise ValueError(str(error)) from None
        text += formatted + CRLF
    text += END_OF_READOUT
    return _with_bcc(STX, text.encode("ascii") + bytes((ETX,)))


def encode_data_message(data_sets: Iterable[DataSet]) -> bytes:
    """A programming-mode answer ``<STX>data sets<ETX><BCC>`` (no CR LF, no '!')."""
    text = "".join(data_set.format() for data_set in data_sets)
    return _with_bcc(STX, text.encode("ascii") + bytes((ETX,)))


# --- values -------------------------------------------------------------------


def numeric_values(data_sets: Iterable[DataSet]) -> dict[str, tuple[Decimal, str | None]]:
    """Address → (exact value, unit) for every data set whose value is a plain number.

    Keys are the addresses as sent (``1.8.0`` or ``1-0:1.8.0*255``). Data sets
    without an address, or with a value that is not a number (a serial number
    in hex, a date with placeholders), are left out. The same address twice
    with different values raises `ProtocolError`.
    """
    values: dict[str, tuple[Decimal, str | None]] = {}
    for data_set in data_sets:
        number = data_set.number
        if not data_set.address or number is None:
            continue
        entry = (number, data_set.unit)
        previous = values.setdefault(data_set.address, entry)
        if previous != entry:
            raise ProtocolError(
                f"data set {data_set.address} appears twice with different values: "
                f"{previous[0]} {previous[1]} and {number} {data_set.unit}"
            )
    return values


def energy_readings(data_sets: Iterable[DataSet], default_unit: str | None = None) -> dict[int, Values]:
    """Tariff → channel → Wh/varh from the energy data sets of a readout.

    OBIS 1.8.x/2.8.x/3.8.x/4.8.x (x = 0 total, 1..4 tariffs) map to A+/A-/R+/R-
    (see `amr.protocols.obis`); other data sets are ignored. Units kWh, Wh,
    MWh, kvarh, varh, Mvarh convert exactly to integer Wh/varh (finer values
    round half-even). A value without a unit takes `default_unit`, or raises
    `ProtocolError` when none is given, as do a non-numeric value, a unit that
    does not fit the channel, and two different values for one register.
    """
    readings: dict[int, Values] = {}
    sources: dict[tuple[Channel, int], str] = {}
    for data_set in data_sets:
        energy = energy_value(data_set, default_unit)
        if energy is None:
            continue
        channel, tariff, wh = energy
        previous = readings.setdefault(tariff, {}).setdefault(channel, wh)
        if previous != wh:
            raise ProtocolError(
                f"{channel.label} tariff {tariff} is given twice with different values: "
                f"{sources[(channel, tariff)]} and {data_set.format()}"
            )
        sources.setdefault((channel, tariff), data_set.format())
    return readings


def energy_value(data_set: DataSet, default_unit: str | None = None) -> tuple[Channel, int, int] | None:
    """Channel, tariff and Wh/varh of one data set; None when it is not an energy register; raises
    `ProtocolError` as `energy_readings` does for a bad value or unit."""
    code = obis.parse_obis(data_set.address)
    register = None if code is None else obis.energy_register(code)
    if register is None:
        return None
    channel, tariff = register
    return channel, tariff, _energy_wh(data_set, channel, default_unit)


def _energy_wh(data_set: DataSet, channel: Channel, default_unit: str | None) -> int:
    number = data_set.number
    if number is None:
        raise ProtocolError(f"energy data set {data_set.address} has no number: {data_set.value!r}")
    unit = data_set.unit if data_set.unit is not None else default_unit
    if unit is None:
        raise ProtocolError(
            f"energy data set {data_set.address}({data_set.value}) has no unit and no "
            f"default unit was configured: cannot tell kWh from Wh"
        )
    if not unit_fits_channel(unit, channel):
        raise ProtocolError(
            f"data set {data_set.address} is {channel.label} but its unit is {unit!r}; "
            f"expected {'kWh, Wh or MWh' if channel.unit == 'kWh' else 'kvarh, varh or Mvarh'}"
        )
    return to_wh(number, unit)


def energy_data_sets(
    readings: Mapping[int, Mapping[Channel, int | None]], *, full_obis: bool = False
) -> list[DataSet]:
    """Data sets for a simulated readout: Wh/varh → ``1.8.0(001234.567*kWh)``.

    Values are written in kWh/kvarh with three decimals and at least six
    integer digits; None values are left out. `full_obis` writes
    ``1-0:1.8.0*255`` instead of ``1.8.0``.
    """
    data_sets: list[DataSet] = []
    for tariff in sorted(readings):
        for channel in Channel:
            wh = readings[tariff].get(channel)
            if wh is None:
                continue
            value = f"{Decimal(wh) / 1000:010.3f}"
            code = obis.energy_code(channel, tariff, full=full_obis)
            data_sets.append(DataSet(code, value, channel.unit))
    return data_sets
