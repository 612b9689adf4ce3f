"""IEC 62056-21 mode C messages: sign-on, identification, option select and the command
messages of programming mode (password, break)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from amr.errors import ProtocolError
from amr.protocols.iec62056_21.framing import ACK, CRLF, ETX, SOH, STX, ascii_text, check_block, with_bcc

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

DEVICE_ADDRESS = re.compile(r"[0-9A-Za-z ]{0,32}")
"""A device address of the sign-on request: up to 32 characters, each a digit, a letter or a space."""
_IDENTIFICATION = re.compile(
    r"/(?P<manufacturer>[A-Za-z]{3})(?P<baud>[ -~])(?:\\(?P<enhanced>[ -~]))?"
    r"(?P<ident>[ \x22-\x2e\x30-\x7e]+)\r\n"  # printable ASCII except '!' and '/'
)


# --- sign-on, identification, option select --------------------------------


def encode_sign_on(address: str = "") -> bytes:
    """``/?address!<CR><LF>``; without an address every meter on the line answers."""
    if DEVICE_ADDRESS.fullmatch(address) is None:
        raise ValueError(f"a device address is up to 32 letters, digits or spaces; got {address!r}")
    return f"/?{address}!{CRLF}".encode("ascii")


def decode_sign_on(message: bytes) -> str:
    """The device address of a sign-on request ("" when none was given)."""
    text = ascii_text(message, "sign-on request")
    if not (text.startswith("/?") and text.endswith("!" + CRLF)):
        raise ProtocolError(f"a sign-on request is /?address!<CR><LF>; got {text!r}")
    address = text[2:-3]
    if DEVICE_ADDRESS.fullmatch(address) is None:
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
    text = ascii_text(message, "identification message")
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
    text = ascii_text(message[1:4], "option select message")
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
    return with_bcc(SOH, body.encode("ascii") + bytes((ETX,)))


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
    text = ascii_text(check_block(block), "command message")
    if len(text) < 2:
        raise ProtocolError(f"a command message has a command and a type; got {text!r}")
    command, command_type, rest = text[0], text[1], text[2:]
    if not rest:
        return CommandMessage(command, command_type)
    if rest[0] != chr(STX):
        raise ProtocolError(f"command data must follow STX; got {rest!r}")
    return CommandMessage(command, command_type, rest[1:])
