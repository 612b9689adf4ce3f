"""Mercury 230/234 (Incotex) requests and answers, as bytes, both directions.

Every frame on the bus, request or answer, is one block ended by a CRC::

    request  +---------+---------+----------------+--------+--------+
             | address | command | parameters ... | CRC lo | CRC hi |
             +---------+---------+----------------+--------+--------+
    answer   +---------+----------------------------------+--------+--------+
             | address | data ...                         | CRC lo | CRC hi |
             +---------+----------------------------------+--------+--------+

The CRC is CRC-16/Modbus over every byte before it (`amr.protocols.crc`).
An answer repeats the address the request was sent to (also for address 0,
the "universal" address every meter answers, so only one meter may be on the
line when it is used). Answers carry no command byte: the master knows what it
asked.

Requests built here (sizes include address and CRC):

=========  =====  =============================================  ==============
command    bytes  parameters                                     answer
=========  =====  =============================================  ==============
0x00 test      4  none                                           status (4)
0x01 open     11  access level (1 user, 2 admin), 6-byte pwd     status (4)
0x02 close     4  none                                           status (4)
0x05 read      6  (array << 4 | month), tariff (0 sum, 1..4)     energy (19)
0x08 param  5..6  parameter number [, its argument byte]         by parameter
=========  =====  =============================================  ==============

Parameters of command 0x08 built here (the first ones АСКУЭ software reads)::

    08 00  serial number and manufacture date   [addr] s1 s2 s3 s4 DD MM YY [CRC]  (10 bytes)
    08 12  variant (исполнение) of the meter    [addr] v1 .. v6 [CRC]              (9 bytes)

Each serial byte is a binary value 0..99, two decimal digits of the 8-digit number, most
significant first (serial 41563201 travels as ``29 38 20 01``); the date bytes are binary
too (day 1..31, month 1..12, year of the century). The variant bytes describe the meter
(accuracy classes, nominal voltage and current, meter constant, number of phases, tariff
and profile options) bit by bit; this module carries them as they are.

A status answer is ``[address][code][CRC lo][CRC hi]``; code 0 means OK. A
request the meter refuses (e.g. an energy read before the channel is open) is
answered with a status answer instead of its usual answer, so a reader must be
ready for 4 bytes where it expected 19 (`is_complete_answer`).

Energy answer (command 0x05)::

    +------+-------------+-------------+-------------+-------------+-----+-----+
    | addr | A+  4 bytes | A-  4 bytes | R+  4 bytes | R-  4 bytes | CRC | CRC |
    +------+-------------+-------------+-------------+-------------+-----+-----+
       0      1 ..  4       5 ..  8       9 .. 12      13 .. 16     17    18

Each value is an unsigned count of Wh (A+, A-) or varh (R+, R-), its four
bytes sent in the order bits 16-23, bits 24-31, bits 0-7, bits 8-15. (The
protocol document numbers the bytes from the most significant, B0 = bits
24-31, and calls this order "B1 B0 B3 B2".) So value 0x0030C528 (3 196 200 Wh)
travels as ``30 00 28 C5``. The two top bits of the most significant byte are
not part of the value and are masked off (``& 0x3F``); ``FF FF FF FF`` means
the meter does not measure that channel (e.g. A- on an import-only meter).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from amr.core.domain import Channel, Values
from amr.errors import DeviceError, ProtocolError
from amr.protocols.crc import append_crc, crc_ok, strip_crc


class Command(enum.IntEnum):
    """Request codes (the second byte of a request)."""

    TEST = 0x00  # test the channel: the meter answers status OK, no access needed
    OPEN = 0x01  # open the channel with an access level and password
    CLOSE = 0x02  # close the channel
    READ_ENERGY = 0x05  # read accumulated energy of one array, month and tariff
    READ_PARAMETER = 0x08  # read a parameter: serial number, variant, ...


class Parameter(enum.IntEnum):
    """Parameter numbers of command 0x08 (the third byte of the request)."""

    SERIAL_AND_DATE = 0x00  # serial number and manufacture date
    VARIANT = 0x12  # variant (исполнение): classes, nominal values, constant, options


class AccessLevel(enum.IntEnum):
    """Access levels of the open-channel request."""

    USER = 1  # reading
    ADMIN = 2  # reading and parameter writing


class Status(enum.IntEnum):
    """Codes of a status answer ``[address][code][CRC]``."""

    OK = 0
    ILLEGAL_COMMAND = 1
    INTERNAL_ERROR = 2
    ACCESS_DENIED = 3
    CLOCK_ALREADY_CORRECTED = 4
    CHANNEL_NOT_OPEN = 5


STATUS_TEXT: dict[int, str] = {
    Status.OK: "OK",
    Status.ILLEGAL_COMMAND: "illegal command or parameter",
    Status.INTERNAL_ERROR: "internal meter error",
    Status.ACCESS_DENIED: (
        "access denied: wrong password, or the open access level is too low for this request"
    ),
    Status.CLOCK_ALREADY_CORRECTED: "the clock has already been corrected today",
    Status.CHANNEL_NOT_OPEN: "channel not open: send an open-channel request (0x01) first",
}


class EnergyArray(enum.IntEnum):
    """Arrays of accumulated energy (high nibble of the read-energy parameter byte).

    Only the arrays whose answer is the four-channel, 16-byte layout are listed.
    """

    SINCE_RESET = 0x0  # accumulated since the last reset: the meter's register
    CURRENT_YEAR = 0x1
    PREVIOUS_YEAR = 0x2
    MONTH = 0x3  # of the month given in the low nibble, 1..12
    CURRENT_DAY = 0x4
    PREVIOUS_DAY = 0x5


UNIVERSAL_ADDRESS = 0  # every meter answers it; only one meter may be on the line
STATUS_ANSWER_LENGTH = 4  # address, code, CRC lo, CRC hi
ENERGY_ANSWER_LENGTH = 19  # address, 4 x 4 value bytes, CRC lo, CRC hi
PASSWORD_LENGTH = 6
DEFAULT_PASSWORDS: dict[AccessLevel, str] = {
    AccessLevel.USER: "111111",  # factory default, sent as 01 01 01 01 01 01
    AccessLevel.ADMIN: "222222",  # factory default, sent as 02 02 02 02 02 02
}
TARIFFS = range(5)  # 0 = sum of all tariffs, 1..4 = T1..T4
ENERGY_CHANNELS: tuple[Channel, ...] = (
    Channel.A_PLUS,
    Channel.A_MINUS,
    Channel.R_PLUS,
    Channel.R_MINUS,
)  # order of the four values in an energy answer
NOT_SUPPORTED = b"\xff\xff\xff\xff"  # value bytes of a channel the meter does not measure
VALUE_MASK = 0x3FFFFFFF  # the two top bits of the most significant byte are not value bits
MAX_ENERGY = VALUE_MASK  # 1 073 741 823 Wh: larger than a 999999.99 kWh register

_REQUEST_LENGTHS: dict[int, int] = {
    Command.TEST: 4,
    Command.OPEN: 11,
    Command.CLOSE: 4,
    Command.READ_ENERGY: 6,
}
SERIAL_ANSWER_LENGTH = 10  # address, 4 serial bytes, day, month, year, CRC lo, CRC hi
VARIANT_LENGTH = 6  # data bytes of the variant answer
_PARAMETER_ANSWER_LENGTHS: dict[int, int] = {
    Parameter.SERIAL_AND_DATE: SERIAL_ANSWER_LENGTH,
    Parameter.VARIANT: 1 + VARIANT_LENGTH + 2,
}
_ANSWER_LENGTHS: dict[int, int] = {
    Command.TEST: STATUS_ANSWER_LENGTH,
    Command.OPEN: STATUS_ANSWER_LENGTH,
    Command.CLOSE: STATUS_ANSWER_LENGTH,
    Command.READ_ENERGY: ENERGY_ANSWER_LENGTH,
}


STATUS_MEANING: dict[int, tuple[str, bool]] = {  # status → (stable code, worth asking again)
    Status.ILLEGAL_COMMAND: ("mercury.illegal_command", False),
    Status.INTERNAL_ERROR: ("mercury.internal_error", True),
    Status.ACCESS_DENIED: ("mercury.access_denied", False),  # the password or level is wrong: fix the config
    Status.CLOCK_ALREADY_CORRECTED: ("mercury.clock_corrected", False),
    Status.CHANNEL_NOT_OPEN: ("mercury.channel_not_open", True),  # the channel timed out: open it again
}


class MercuryStatusError(DeviceError):
    """The meter answered a request with a non-zero status code; `code` and `retryable` say what it means."""

    def __init__(self, address: int, status: int) -> None:
        text = STATUS_TEXT.get(status, "unknown status code")
        code, retryable = STATUS_MEANING.get(status, ("mercury.status", False))
        super().__init__(
            f"Mercury meter at address {address} answered status {status}: {text}", code=code, retryable=retryable
        )
        self.address = address
        self.status = status


# --- values -----------------------------------------------------------------


def password_bytes(password: str | bytes) -> bytes:
    """The six password bytes as sent.

    A string of six digits is sent digit by digit as byte values ("111111" →
    ``01 01 01 01 01 01``); six raw bytes are sent as they are.
    """
    if isinstance(password, bytes):
        if len(password) != PASSWORD_LENGTH:
            raise ValueError(f"a Mercury password is {PASSWORD_LENGTH} bytes; got {len(password)}")
        return password
    if len(password) != PASSWORD_LENGTH or not all(c in "0123456789" for c in password):
        raise ValueError(f"a Mercury password is {PASSWORD_LENGTH} digits such as '111111'; got {password!r}")
    return bytes(int(c) for c in password)


def _check_address(address: int) -> None:
    if not 0 <= address <= 0xFF:
        raise ValueError(f"a Mercury address is one byte, 0..255; got {address}")


def _pack_value(value: int | None) -> bytes:
    """Four value bytes in the order bits 16-23, 24-31, 0-7, 8-15; None → FF FF FF FF."""
    if value is None:
        return NOT_SUPPORTED
    if not 0 <= value <= MAX_ENERGY:
        raise ValueError(f"an energy value is 0..{MAX_ENERGY} Wh/varh; got {value}")
    b = value.to_bytes(4, "big")  # b[0] = bits 24-31 ... b[3] = bits 0-7
    return bytes((b[1], b[0], b[3], b[2]))


def _unpack_value(raw: bytes) -> int | None:
    """The inverse of `_pack_value`; the two top bits are masked off."""
    if raw == NOT_SUPPORTED:
        return None
    value = raw[1] << 24 | raw[0] << 16 | raw[3] << 8 | raw[2]
    return value & VALUE_MASK


def _status_code(byte: int) -> int:
    # The code is in the low four bits of the status byte.
    return byte & 0x0F


# --- master side: requests --------------------------------------------------


def encode_test_request(address: int) -> bytes:
    """Test the channel: ``[address] 00 [CRC]``; answered by status OK."""
    _check_address(address)
    return append_crc(bytes((address, Command.TEST)))


def encode_open_request(
    address: int,
    level: AccessLevel = AccessLevel.USER,
    password: str | bytes | None = None,
) -> bytes:
    """Open the channel: ``[address] 01 [level] [6 password bytes] [CRC]``.

    `password` defaults to the factory password of `level`.
    """
    _check_address(address)
    level = AccessLevel(level)
    secret = password_bytes(DEFAULT_PASSWORDS[level] if password is None else password)
    return append_crc(bytes((address, Command.OPEN, level)) + secret)


def encode_close_request(address: int) -> bytes:
    """Close the channel: ``[address] 02 [CRC]``."""
    _check_address(address)
    return append_crc(bytes((address, Command.CLOSE)))


def encode_energy_request(
    address: int,
    array: EnergyArray = EnergyArray.SINCE_RESET,
    month: int = 0,
    tariff: int = 0,
) -> bytes:
    """Read energy: ``[address] 05 [array << 4 | month] [tariff] [CRC]``.

    `month` (1..12) is given only with `EnergyArray.MONTH`; `tariff` is 0 for
    the sum of all tariffs, 1..4 for T1..T4.
    """
    _check_address(address)
    array = EnergyArray(array)
    if array is EnergyArray.MONTH:
        if not 1 <= month <= 12:
            raise ValueError(f"the month array needs a month 1..12; got {month}")
    elif month != 0:
        raise ValueError(f"a month is given only with the MONTH array, not {array.name}")
    if tariff not in TARIFFS:
        raise ValueError(f"tariff is 0 (sum) or 1..4; got {tariff}")
    return append_crc(bytes((address, Command.READ_ENERGY, array << 4 | month, tariff)))


def encode_parameter_request(address: int, parameter: Parameter | int, argument: bytes = b"") -> bytes:
    """Read a parameter: ``[address] 08 [parameter] [argument] [CRC]`` (e.g. 08 00: serial and date)."""
    _check_address(address)
    if not 0 <= parameter <= 0xFF or len(argument) > 1:
        raise ValueError(f"a parameter is one byte with at most one argument byte; got {parameter}, {argument!r}")
    return append_crc(bytes((address, Command.READ_PARAMETER, parameter)) + argument)


def expected_answer_length(request: bytes) -> int:
    """How many bytes the normal answer to `request` has, CRC included.

    A refused request is answered by a shorter status answer
    (`STATUS_ANSWER_LENGTH`); use `is_complete_answer` to stop reading then.
    """
    if len(request) < 2:
        raise ValueError("a request has at least an address and a command byte")
    if request[1] == Command.READ_PARAMETER and len(request) >= 3 and request[2] in _PARAMETER_ANSWER_LENGTHS:
        return _PARAMETER_ANSWER_LENGTHS[request[2]]
    try:
        return _ANSWER_LENGTHS[request[1]]
    except KeyError:
        raise ValueError(f"no answer length known for command 0x{request[1]:02X}") from None


def is_complete_answer(request: bytes, received: bytes) -> bool:
    """True when `received` holds a whole answer to `request`.

    That is the normal answer length, or a 4-byte status answer with a correct
    CRC (which is how the meter refuses a request). The first 4 bytes of a long
    answer end in a correct CRC by chance once in 65536; the reader then stops
    early, decoding reports a status or length error for that poll, and the
    poll is retried. A reader that also waits for the line to go quiet (the
    inter-frame pause) avoids even that.
    """
    expected = expected_answer_length(request)
    if len(received) >= expected:
        return True
    return len(received) == STATUS_ANSWER_LENGTH and crc_ok(received)


# --- master side: answers ---------------------------------------------------


def _checked_body(answer: bytes, address: int, what: str) -> bytes:
    """The answer without CRC, after checking CRC and address."""
    body = strip_crc(answer)
    if body[0] != address:
        raise ProtocolError(f"{what} comes from address {body[0]}, expected address {address}")
    return body


def decode_status_answer(answer: bytes, address: int) -> None:
    """Check a status answer of the meter at `address`.

    Returns for status OK; raises `MercuryStatusError` (a `DeviceError`) for any
    other code and `ProtocolError` for a wrong length, CRC or address.
    """
    if len(answer) != STATUS_ANSWER_LENGTH:
        raise ProtocolError(
            f"status answer must be {STATUS_ANSWER_LENGTH} bytes ([address][code][CRC]); "
            f"got {len(answer)}: {answer.hex(' ').upper()}"
        )
    body = _checked_body(answer, address, "status answer")
    status = _status_code(body[1])
    if status != Status.OK:
        raise MercuryStatusError(address, status)


def decode_energy_answer(answer: bytes, address: int) -> Values:
    """A+, A-, R+, R- in Wh/varh from an energy answer; None for unsupported channels.

    A status answer in its place is decoded as such: a refusal raises
    `MercuryStatusError`; status OK (no data) raises `ProtocolError`.
    """
    if len(answer) == STATUS_ANSWER_LENGTH:
        decode_status_answer(answer, address)
        raise ProtocolError(
            f"meter at address {address} answered status OK where "
            f"{ENERGY_ANSWER_LENGTH} bytes of energy were expected"
        )
    if len(answer) != ENERGY_ANSWER_LENGTH:
        raise ProtocolError(
            f"energy answer must be {ENERGY_ANSWER_LENGTH} bytes "
            f"([address] + 16 data + 2 CRC) or a {STATUS_ANSWER_LENGTH}-byte status answer; "
            f"got {len(answer)}: {answer.hex(' ').upper()}"
        )
    body = _checked_body(answer, address, "energy answer")
    return {channel: _unpack_value(body[1 + 4 * i : 5 + 4 * i]) for i, channel in enumerate(ENERGY_CHANNELS)}


@dataclass(frozen=True, slots=True)
class SerialNumber:
    """The answer to 08 00: the 8-digit serial number and the manufacture date."""

    serial: str  # eight digits, leading zeros kept
    made: date


def decode_serial_answer(answer: bytes, address: int) -> SerialNumber:
    """Serial number and manufacture date from the answer to 08 00 (a refusal raises `MercuryStatusError`)."""
    if len(answer) == STATUS_ANSWER_LENGTH:
        decode_status_answer(answer, address)
        raise ProtocolError(f"meter at address {address} answered status OK where its serial number was expected")
    if len(answer) != SERIAL_ANSWER_LENGTH:
        raise ProtocolError(
            f"serial number answer must be {SERIAL_ANSWER_LENGTH} bytes; got {len(answer)}: {answer.hex(' ').upper()}"
        )
    body = _checked_body(answer, address, "serial number answer")
    digits, (day, month, year) = body[1:5], body[5:8]
    if any(b > 99 for b in digits):
        raise ProtocolError(f"serial number bytes must each be 0..99; got {digits.hex(' ').upper()}")
    try:
        made = date(2000 + year, month, day)
    except ValueError:
        raise ProtocolError(f"manufacture date {day:02d}.{month:02d}.{year:02d} is not a date") from None
    return SerialNumber("".join(f"{b:02d}" for b in digits), made)


def decode_variant_answer(answer: bytes, address: int) -> bytes:
    """The six variant bytes of the answer to 08 12, as sent."""
    if len(answer) == STATUS_ANSWER_LENGTH:
        decode_status_answer(answer, address)
    if len(answer) != 1 + VARIANT_LENGTH + 2:
        raise ProtocolError(f"variant answer must be {1 + VARIANT_LENGTH + 2} bytes; got {len(answer)}")
    return _checked_body(answer, address, "variant answer")[1:]


# --- meter side: requests ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelTestRequest:
    """``[address] 00 [CRC]``."""

    address: int


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """``[address] 01 [level] [password x 6] [CRC]``; `level` as received, maybe invalid."""

    address: int
    level: int
    password: bytes


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """``[address] 02 [CRC]``."""

    address: int


@dataclass(frozen=True, slots=True)
class EnergyRequest:
    """``[address] 05 [array << 4 | month] [tariff] [CRC]``; fields as received."""

    address: int
    array: int
    month: int
    tariff: int


@dataclass(frozen=True, slots=True)
class UnknownRequest:
    """A request with a correct CRC and a command this module does not decode.

    A simulator answers it with `Status.ILLEGAL_COMMAND`, as a meter would for
    a command it lacks.
    """

    address: int
    command: int
    parameters: bytes


@dataclass(frozen=True, slots=True)
class ParameterRequest:
    """``[address] 08 [parameter] [argument?] [CRC]``; fields as received."""

    address: int
    parameter: int
    argument: bytes


Request = ChannelTestRequest | OpenRequest | CloseRequest | EnergyRequest | ParameterRequest | UnknownRequest


def decode_request(frame: bytes) -> Request:
    """The request in `frame`, as a meter receives it.

    Raises `ProtocolError` for a bad CRC, or a known command with the wrong
    number of parameter bytes.
    """
    body = strip_crc(frame)
    if len(body) < 2:
        raise ProtocolError(
            f"a request has an address and a command byte before the CRC; got {frame.hex(' ').upper()}"
        )
    address, command, parameters = body[0], body[1], body[2:]
    if command == Command.READ_PARAMETER:
        if len(parameters) not in (1, 2):
            shown = frame.hex(" ").upper()
            raise ProtocolError(f"request 0x08 carries a parameter and at most one argument; got {shown}")
        return ParameterRequest(address, parameters[0], parameters[1:])
    expected = _REQUEST_LENGTHS.get(command)
    if expected is None:
        return UnknownRequest(address, command, parameters)
    if len(frame) != expected:
        raise ProtocolError(
            f"request 0x{command:02X} must be {expected} bytes; got {len(frame)}: {frame.hex(' ').upper()}"
        )
    if command == Command.TEST:
        return ChannelTestRequest(address)
    if command == Command.CLOSE:
        return CloseRequest(address)
    if command == Command.OPEN:
        return OpenRequest(address, parameters[0], parameters[1:])
    return EnergyRequest(address, parameters[0] >> 4, parameters[0] & 0x0F, parameters[1])


# --- meter side: answers ----------------------------------------------------


def encode_status_answer(address: int, status: Status = Status.OK) -> bytes:
    """``[address] [code] [CRC]``."""
    _check_address(address)
    return append_crc(bytes((address, Status(status))))


def encode_serial_answer(address: int, serial: str, made: date) -> bytes:
    """``[address] [4 serial bytes, each 0..99] [day] [month] [year] [CRC]`` for an 8-digit `serial`."""
    _check_address(address)
    if len(serial) != 8 or not serial.isdigit() or not 2000 <= made.year <= 2099:
        raise ValueError(f"a serial number is 8 digits made in 2000..2099; got {serial!r}, {made}")
    digits = bytes(int(serial[i : i + 2]) for i in range(0, 8, 2))
    return append_crc(bytes((address,)) + digits + bytes((made.day, made.month, made.year - 2000)))


def encode_variant_answer(address: int, variant: bytes) -> bytes:
    """``[address] [6 variant bytes] [CRC]``."""
    _check_address(address)
    if len(variant) != VARIANT_LENGTH:
        raise ValueError(f"the variant is {VARIANT_LENGTH} bytes; got {len(variant)}")
    return append_crc(bytes((address,)) + variant)


def encode_energy_answer(address: int, values: Mapping[Channel, int | None]) -> bytes:
    """``[address] [A+] [A-] [R+] [R-] [CRC]``; a missing or None channel is sent as FF FF FF FF."""
    _check_address(address)
    data = b"".join(_pack_value(values.get(channel)) for channel in ENERGY_CHANNELS)
    return append_crc(bytes((address,)) + data)
