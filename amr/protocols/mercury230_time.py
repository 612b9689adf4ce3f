"""Mercury 230/234 clock and event journals, as bytes, both directions.

From Incotex's exchange protocol of the three-phase Mercury meters (230, 231, 233, 234, 236;
«Протокол обмена», sections on command 03h «запись параметров» and 04h «чтение массивов
времён»). Every frame is ``[address] [command] [parameters] [CRC16/Modbus lo hi]``
(`amr.protocols.mercury230`); all time fields are BCD, in the meter's local time.

Requests built here::

    04 00                         read the clock                           (access level 1)
    04 NN RR                      read record RR (0..9) of time array NN   (access level 1)
    03 0D ss mm hh                correct the clock to hh:mm:ss: at most ±4 minutes from the
                                  meter's own time, once a day; a second correction the same day
                                  is refused with status 4 «already corrected»  (access level 1)
    03 0C ss mm hh dw DD MM YY WS set the clock and date                   (access level 2)

Answer to 04 00 (11 bytes)::

    [addr] ss mm hh dw DD MM YY WS [CRC lo] [CRC hi]
    dw day of week 1 (Monday) .. 7; WS 1 winter time, 0 summer time (Russia has kept
    winter time since 2014: WS is carried, not used)

Time arrays (NN) read here, each a ring of 10 records (RR 0..9); a record is a pair of
6-byte times ``ss mm hh DD MM YY`` (15-byte answer), all zero when the record was never
written::

    01  meter switched off / on          03..05  phase 1..3 voltage lost / restored
    02  clock before / after correction  12      cover opened / closed

A write or a refused read is answered by a 4-byte status answer (status 3: access level too
low; 4: the clock was already corrected today).

Checked against public implementations (November 2026; Incotex's current edition of the command
set is https://www.incotexcom.ru/files/em/docs/merkuriy-sistema-komand-ver-1-2022-12-12.pdf):

- the array numbers 01 (on/off), 02 (clock corrections), 03..05 (phase 1..3), 12 (cover
  opened/closed) and the ring of 10 records, RR 0..9, are listed alike by the ioBroker adapter
  for Mercury meters (instalator/ioBroker.mercury, its command table) and by two independent
  C# drivers (the «Matrix SurveyServer» Mercury 230 driver and a «Mercury230Protocol» library);
- a record's answer holds two 6-byte BCD times ``ss mm hh DD MM YY`` (the Matrix driver reads
  them at offsets 0 and 6 of the data);
- array 02: first time before the correction, second after; array 12: first opened, second
  closed (the Matrix driver reads them so; github SVS1170/mercury_230, mercury230.py, reads
  ``04 12 00`` the same: «case opened» the first six bytes, «case closed» the next six);
- arrays 01 and 03..05: which of the two times is the switch-off is NOT settled: the Matrix
  driver names the first time «on» and the second «off», against this module. Kept as «off,
  on» (a record can only be completed at power-up, when both times are known) until the
  Incotex document is read; a meter showing on-before-off pairs in every record would say
  the order is the other one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time

from amr.errors import ProtocolError
from amr.protocols.crc import append_crc, crc_ok, strip_crc
from amr.protocols.mercury230 import STATUS_ANSWER_LENGTH, decode_status_answer

READ_TIMES = 0x04  # command «чтение массивов времён»
WRITE_PARAMETER = 0x03  # command «запись параметров»
SET_TIME = 0x0C  # parameter of 03: set the clock and date (admin level)
CORRECT_TIME = 0x0D  # parameter of 03: correct the clock within ±4 minutes, once a day (user level)
MAX_CORRECTION_S = 240  # ±4 minutes
RECORDS = 10  # records per time array (a ring)
CLOCK_ANSWER_LENGTH = 11  # address, 8 BCD bytes, CRC
RECORD_ANSWER_LENGTH = 15  # address, 2 × 6 BCD bytes, CRC


class TimeArray(enum.IntEnum):
    """Time arrays of command 04 (the third byte of the request)."""

    CLOCK = 0x00
    POWER = 0x01  # off, on
    CLOCK_CORRECTION = 0x02  # before, after
    PHASE_1 = 0x03  # voltage lost, restored
    PHASE_2 = 0x04
    PHASE_3 = 0x05
    COVER = 0x12  # opened, closed


def bcd(value: int) -> int:
    """One byte of two BCD digits (0..99)."""
    if not 0 <= value <= 99:
        raise ValueError(f"a BCD byte holds 0..99; got {value}")
    return (value // 10) << 4 | value % 10


def from_bcd(byte: int) -> int:
    """The value 0..99 of a BCD byte; `ProtocolError` for a nibble above 9."""
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise ProtocolError(f"0x{byte:02X} is not a BCD byte")
    return high * 10 + low


def _stamp(ss: int, mm: int, hh: int, day: int, month: int, year: int) -> datetime:
    try:
        return datetime(2000 + year, month, day, hh, mm, ss)
    except ValueError:
        shown = f"{day:02d}.{month:02d}.{year:02d} {hh:02d}:{mm:02d}:{ss:02d}"
        raise ProtocolError(f"{shown} is not a time") from None


# --- master side -------------------------------------------------------------------------


def encode_read_clock(address: int) -> bytes:
    """``[address] 04 00 [CRC]``."""
    return append_crc(bytes((address, READ_TIMES, TimeArray.CLOCK)))


def encode_read_record(address: int, array: TimeArray | int, record: int) -> bytes:
    """``[address] 04 [array] [record 0..9] [CRC]``."""
    if not 0 <= record < RECORDS:
        raise ValueError(f"a time array holds records 0..{RECORDS - 1}; got {record}")
    return append_crc(bytes((address, READ_TIMES, array, record)))


def encode_correct_clock(address: int, to: time) -> bytes:
    """``[address] 03 0D ss mm hh [CRC]``: correct the clock to `to` (the meter's local time)."""
    return append_crc(bytes((address, WRITE_PARAMETER, CORRECT_TIME, bcd(to.second), bcd(to.minute), bcd(to.hour))))


def encode_set_clock(address: int, to: datetime, *, winter: bool = True) -> bytes:
    """``[address] 03 0C ss mm hh dw DD MM YY WS [CRC]``: set clock and date to `to` (naive, local)."""
    fields = (to.second, to.minute, to.hour, to.isoweekday(), to.day, to.month, to.year % 100, 1 if winter else 0)
    return append_crc(bytes((address, WRITE_PARAMETER, SET_TIME, *map(bcd, fields))))


def answer_length(request: bytes) -> int:
    """The length of the normal answer to a request built here (a refusal is a 4-byte status answer)."""
    if request[1] == WRITE_PARAMETER:
        return STATUS_ANSWER_LENGTH
    return CLOCK_ANSWER_LENGTH if request[2] == TimeArray.CLOCK else RECORD_ANSWER_LENGTH


def is_complete(request: bytes, received: bytes) -> bool:
    """True when `received` holds the whole answer to `request`, or a status answer (a refusal)."""
    return len(received) >= answer_length(request) or (len(received) == STATUS_ANSWER_LENGTH and crc_ok(received))


def _body(answer: bytes, address: int, length: int, what: str) -> bytes:
    if len(answer) == STATUS_ANSWER_LENGTH:
        decode_status_answer(answer, address)  # raises `MercuryStatusError` for a refusal
        raise ProtocolError(f"meter at address {address} answered status OK where {what} was expected")
    if len(answer) != length:
        raise ProtocolError(f"{what} must be {length} bytes; got {len(answer)}: {answer.hex(' ').upper()}")
    body = strip_crc(answer)
    if body[0] != address:
        raise ProtocolError(f"{what} comes from address {body[0]}, expected address {address}")
    return body[1:]


@dataclass(frozen=True, slots=True)
class MeterClock:
    """The answer to 04 00: the meter's local time (naive) and its season flag."""

    local: datetime
    winter: bool


def decode_clock_answer(answer: bytes, address: int) -> MeterClock:
    """The meter's clock from the answer to 04 00 (a refusal raises `MercuryStatusError`)."""
    data = _body(answer, address, CLOCK_ANSWER_LENGTH, "a clock answer")
    ss, mm, hh, _dw, day, month, year = (from_bcd(b) for b in data[:7])
    return MeterClock(_stamp(ss, mm, hh, day, month, year), data[7] == 1)


@dataclass(frozen=True, slots=True)
class TimeRecord:
    """One record of a time array: the first and second time of the pair (None: not written)."""

    first: datetime | None
    second: datetime | None
    raw: bytes


def _pair_time(six: bytes) -> datetime | None:
    if not any(six):
        return None
    ss, mm, hh, day, month, year = (from_bcd(b) for b in six)
    return _stamp(ss, mm, hh, day, month, year)


def decode_record_answer(answer: bytes, address: int) -> TimeRecord:
    """One record of a time array from the answer to 04 NN RR."""
    data = _body(answer, address, RECORD_ANSWER_LENGTH, "a time array record")
    return TimeRecord(_pair_time(data[:6]), _pair_time(data[6:12]), bytes(data))


# --- meter side (the simulator) ----------------------------------------------------------


def encode_clock_answer(address: int, local: datetime, *, winter: bool = True) -> bytes:
    """``[address] ss mm hh dw DD MM YY WS [CRC]``."""
    fields = (local.second, local.minute, local.hour, local.isoweekday(), local.day, local.month, local.year % 100)
    return append_crc(bytes((address, *map(bcd, fields), 1 if winter else 0)))


def _six(moment: datetime | None) -> bytes:
    if moment is None:
        return bytes(6)
    return bytes(map(bcd, (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year % 100)))


def encode_record_answer(address: int, first: datetime | None, second: datetime | None) -> bytes:
    """``[address] [6 BCD bytes] [6 BCD bytes] [CRC]``; an unwritten time is six zero bytes."""
    return append_crc(bytes((address,)) + _six(first) + _six(second))


@dataclass(frozen=True, slots=True)
class ClockWrite:
    """A decoded 03 0C (`local` set) or 03 0D (`correct_to` set) request."""

    correct_to: time | None = None
    local: datetime | None = None


def decode_clock_write(parameters: bytes) -> ClockWrite:
    """The parameters after the command byte 03 of a clock write; `ProtocolError` for anything else."""
    if len(parameters) == 4 and parameters[0] == CORRECT_TIME:
        ss, mm, hh = (from_bcd(b) for b in parameters[1:4])
        try:
            return ClockWrite(correct_to=time(hh, mm, ss))
        except ValueError:
            raise ProtocolError(f"{hh:02d}:{mm:02d}:{ss:02d} is not a time of day") from None
    if len(parameters) == 9 and parameters[0] == SET_TIME:
        ss, mm, hh, _dw, day, month, year = (from_bcd(b) for b in parameters[1:8])
        return ClockWrite(local=_stamp(ss, mm, hh, day, month, year))
    raise ProtocolError(f"not a clock write: 03 {parameters.hex(' ').upper()}")


__all__ = [
    "MAX_CORRECTION_S",
    "RECORDS",
    "ClockWrite",
    "MeterClock",
    "TimeArray",
    "TimeRecord",
    "decode_clock_answer",
    "decode_clock_write",
    "decode_record_answer",
    "encode_clock_answer",
    "encode_correct_clock",
    "encode_read_clock",
    "encode_read_record",
    "encode_record_answer",
    "encode_set_clock",
    "is_complete",
]
