"""Mercury 230/234 power profile (профиль средних мощностей) as bytes, both directions.

Source: Incotex, "Счётчики электрической энергии статические трёхфазные «Меркурий 230».
Протокол обмена": the request for the last record of the average-power array (command 0x08,
parameter 0x13), reading memory by physical address (command 0x06; memory 3 is the
average-power array) and the variant (08 12) that gives the meter constant.

Last record (08 13)::

    -> [addr] 08 13 [CRC]                                                    5 bytes
    <- [addr] [addr hi] [addr lo] [status] [hh] [mm] [DD] [MM] [YY] [T] [CRC]  12 bytes

The address is that of the newest record's first byte in memory 3 (most significant byte first);
hh..YY are BCD, in the meter's clock (local time), the END of the newest record's interval; T is
the integration period in minutes.
The status byte is the meter's status of the newest record; its bit 0 (0x01) says the array has
overflowed: the pointer went round and the oldest records were overwritten (bit 1: incomplete
record, bit 2: memory initialised, bit 3: winter time, bit 4: additional profile, bits 5-6:
the tariff in force).

Memory read (command 0x06)::

    -> [addr] 06 [memory] [address hi] [address lo] [count] [CRC]              8 bytes
    <- [addr] [count bytes] [CRC]

One record of memory 3 takes 16 bytes (addresses step by 0x10; 65536 bytes hold 4096 records,
85 1/3 days at 30 minutes) and is read as its first 15::

    +--------+----+----+----+----+----+---+-------+-------+-------+-------+
    | status | hh | mm | DD | MM | YY | T |  P+   |  P-   |  Q+   |  Q-   |
    +--------+----+----+----+----+----+---+-------+-------+-------+-------+
       0       1    2    3    4    5    6   7  8    9 10   11 12   13 14

hh..YY (BCD) are the END of the record's interval in the meter's clock (the record stamped 00:30
holds 00:00-00:30); T its period in minutes. This module turns the stamp into the interval's
start (stamp - T) when decoding and back when encoding: callers see starts.

Each of P+ P- Q+ Q- is a count N of the meter's pulses in the interval, two bytes, low byte first;
FF FF is "no value" (a channel the meter does not keep). The document gives the
average power of the interval as P = N × (60 / T) / (2 × A) kW with A the meter constant in
pulses per kWh, so the interval's energy is N / (2 × A) kWh = N × 500 / A Wh: exact as a
fraction, a whole number of Wh only for some constants (A = 500: 1 Wh a pulse; A = 5000: 0.1 Wh).
Status bit 1 (0x02) marks an incomplete record (неполный срез): the meter was off for part of
the interval, or its clock was set within it. A meter that is off writes no records at all:
an outage is a jump in the records' times, the first record after it marked incomplete.
An erased record reads as FF bytes.

The meter constant is the low four bits of the variant's second byte (08 12):
0 → 5000, 1 → 25000, 2 → 1250, 3 → 500, 4 → 1000, 5 → 250 pulses per kWh.

Checked against public implementations (November 2026):

- the 08 13 answer layout (address hi lo, status, hh mm DD MM YY, T) is read the same way by the
  Rapid SCADA driver KpMercury23x (A. Burakhin) and by the Prizmer Mercury 230 driver
  (github Prizmer/prizmer_test);
- record status bit 1 (0x02) is «неполный срез» in both;
- the memory read ``06 03 [hi] [lo] 0F`` (15 bytes of a record), records 0x10 bytes apart, the
  08 13 address a byte address: Prizmer steps back 0x10 per record from it; KpMercury23x
  instead multiplies it by 16 (a record number), so one of them is wrong for some models;
- the pulse counts are two bytes, low byte first, and P = N × (60 / T) / (2 × A): both drivers;
- the status bits of 08 13: bit 0 (0x01) «переполнение массива», bit 1 «неполный срез», bit 2
  «инициализация памяти», bit 3 season (1 winter), bit 4 main/additional profile, bits 5-6 the
  tariff, as decoded by a Python service tool for Incotex meters (its get_last_profile), by a
  C# Mercury 230 configurator (its status-string decoder) and by Prizmer (bit 0 «признак
  перезаписи»). This module used bit 7 (0x80) for the overflow until November 2026: wrong;
- the 08 13 address: Prizmer treats it as a byte address for firmware before 9.0.0 (Mercury 230)
  and as a record number (× 0x10, with the 17th address bit sent as memory 0x83) from 9.0.0
  (233 and later); KpMercury23x and the Incotex service tool multiply it by 0x10 always. This
  module reads it as a byte address of a 64 KiB memory 3, right for the older Mercury 230 only;
- hh..YY is the END of the interval: the Incotex service tool writes the night-tariff flag
  (status bits 5-6) into the records stamped 23:30, 00:00 .. 07:00, i.e. the intervals of
  23:00-07:00 by their ends; Prizmer notes that a record stamped 00:00 is the previous day's
  «24:00» and that asking for 00:30..02:30 by start yields records stamped 01:00..03:00. This
  module took the stamp for the start until November 2026: wrong by one period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from fractions import Fraction

from amr.core.domain import Channel
from amr.errors import ProtocolError
from amr.protocols import mercury230 as merc
from amr.protocols.crc import append_crc, strip_crc

READ_MEMORY = 0x06  # command: read memory by physical address
LAST_RECORD = 0x13  # parameter of command 0x08: the newest record of the average-power array
PROFILE_MEMORY = 0x03  # memory 3: the average-power array
RECORD_STEP = 0x10  # bytes between two records
RECORD_LENGTH = 15  # bytes read of each record
MEMORY_SIZE = 0x10000  # bytes of memory 3: 4096 records
RECORDS = MEMORY_SIZE // RECORD_STEP
LAST_RECORD_ANSWER_LENGTH = 12
READ_REQUEST_LENGTH = 8
OVERFLOW = 0x01  # status bit 0 of the last-record answer: the array went round (see the sources above)
INCOMPLETE = 0x02  # status bit of a record: the interval is incomplete
NO_VALUE = 0xFFFF
CHANNELS: tuple[Channel, ...] = (Channel.A_PLUS, Channel.A_MINUS, Channel.R_PLUS, Channel.R_MINUS)
CONSTANTS: dict[int, int] = {0: 5000, 1: 25000, 2: 1250, 3: 500, 4: 1000, 5: 250}  # variant code → pulses/kWh


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def _from_bcd(byte: int, what: str) -> int:
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise ProtocolError(f"the {what} byte 0x{byte:02X} is not BCD")
    return high * 10 + low


def _time_bytes(moment: datetime) -> bytes:
    return bytes(_bcd(v) for v in (moment.hour, moment.minute, moment.day, moment.month, moment.year - 2000))


def _time_of(raw: bytes, tz: tzinfo) -> datetime:
    """hh mm DD MM YY (BCD) in the meter's clock, as an aware time in `tz`."""
    hour, minute, day, month, year = (
        _from_bcd(b, n) for b, n in zip(raw, ("hour", "minute", "day", "month", "year"), strict=True)
    )
    try:
        return datetime(2000 + year, month, day, hour, minute, tzinfo=tz)
    except ValueError:
        raise ProtocolError(f"{day:02d}.{month:02d}.{year:02d} {hour:02d}:{minute:02d} is not a time") from None


def constant_of_variant(variant: bytes) -> int:
    """The meter constant (pulses per kWh) from the six variant bytes of 08 12."""
    code = variant[1] & 0x0F
    try:
        return CONSTANTS[code]
    except KeyError:
        raise ProtocolError(f"variant byte 2 gives meter constant code {code}, not one of 0..5") from None


def pulses_to_wh(pulses: int, constant: int) -> Fraction:
    """The energy of `pulses` stored pulses with meter constant `constant` (pulses/kWh): N × 500 / A Wh."""
    return Fraction(pulses * 500, constant)


# --- master side ------------------------------------------------------------


def encode_last_record_request(address: int) -> bytes:
    """``[addr] 08 13 [CRC]``."""
    return merc.encode_parameter_request(address, LAST_RECORD)


def encode_read_request(address: int, memory_address: int, count: int = RECORD_LENGTH) -> bytes:
    """``[addr] 06 03 [address hi] [address lo] [count] [CRC]``: `count` bytes of memory 3."""
    if not 0 <= memory_address < MEMORY_SIZE or not 1 <= count <= 0xFF:
        raise ValueError(f"memory 3 address 0..0xFFFF and count 1..255; got 0x{memory_address:X}, {count}")
    return append_crc(
        bytes((address, READ_MEMORY, PROFILE_MEMORY)) + memory_address.to_bytes(2, "big") + bytes((count,))
    )


@dataclass(frozen=True, slots=True)
class LastRecord:
    """The answer to 08 13: where the newest record is, its time and the integration period."""

    memory_address: int
    start: datetime  # aware, in the meter's zone
    period: timedelta
    overflowed: bool  # the array went round: all 4096 records hold data
    status: int


def decode_last_record_answer(answer: bytes, address: int, tz: tzinfo) -> LastRecord:
    """The newest record's address and time; a refusal raises `MercuryStatusError`."""
    if len(answer) == merc.STATUS_ANSWER_LENGTH:
        merc.decode_status_answer(answer, address)
        raise ProtocolError(f"meter at address {address} answered status OK where its last profile record was expected")
    if len(answer) != LAST_RECORD_ANSWER_LENGTH:
        raise ProtocolError(
            f"last-record answer must be {LAST_RECORD_ANSWER_LENGTH} bytes; "
            f"got {len(answer)}: {answer.hex(' ').upper()}"
        )
    body = strip_crc(answer)
    if body[0] != address:
        raise ProtocolError(f"last-record answer comes from address {body[0]}, expected {address}")
    period = body[9]
    if not 1 <= period <= 60:
        raise ProtocolError(f"integration period of {period} minutes is not 1..60")
    return LastRecord(
        memory_address=int.from_bytes(body[1:3], "big"),
        start=_time_of(body[4:9], tz) - timedelta(minutes=period),  # the stamp is the interval's end
        period=timedelta(minutes=period),
        overflowed=bool(body[3] & OVERFLOW),
        status=body[3],
    )


@dataclass(frozen=True, slots=True)
class PowerRecord:
    """One record of memory 3: start (meter's zone; the meter stamps the end), period, status, pulse counts."""

    start: datetime
    period: timedelta
    status: int
    pulses: Mapping[Channel, int | None]

    @property
    def incomplete(self) -> bool:
        """The meter marked the interval incomplete."""
        return bool(self.status & INCOMPLETE)

    def energy(self, constant: int) -> dict[Channel, Fraction]:
        """Exact Wh/varh per channel that has a value."""
        return {c: pulses_to_wh(n, constant) for c, n in self.pulses.items() if n is not None}


def decode_record(data: bytes, tz: tzinfo) -> PowerRecord | None:
    """One record's 15 bytes; None for an erased record (FF bytes)."""
    if len(data) != RECORD_LENGTH:
        raise ProtocolError(f"a power profile record is {RECORD_LENGTH} bytes; got {len(data)}")
    if data[1:6] == b"\xff" * 5:
        return None
    period = data[6]
    if not 1 <= period <= 60:
        raise ProtocolError(f"profile record with an integration period of {period} minutes")
    pulses: dict[Channel, int | None] = {}
    for i, channel in enumerate(CHANNELS):
        value = int.from_bytes(data[7 + 2 * i : 9 + 2 * i], "little")
        pulses[channel] = None if value == NO_VALUE else value
    length = timedelta(minutes=period)
    return PowerRecord(_time_of(data[1:6], tz) - length, length, data[0], pulses)  # the stamp is the end


def decode_read_answer(answer: bytes, address: int, count: int = RECORD_LENGTH) -> bytes:
    """The `count` data bytes of a memory read; a refusal raises `MercuryStatusError`."""
    if len(answer) == merc.STATUS_ANSWER_LENGTH and count + 3 != merc.STATUS_ANSWER_LENGTH:
        merc.decode_status_answer(answer, address)
        raise ProtocolError(
            f"meter at address {address} answered status OK where {count} bytes of memory were expected"
        )
    if len(answer) != count + 3:
        raise ProtocolError(
            f"memory read answer must be {count + 3} bytes; got {len(answer)}: {answer.hex(' ').upper()}"
        )
    body = strip_crc(answer)
    if body[0] != address:
        raise ProtocolError(f"memory read answer comes from address {body[0]}, expected {address}")
    return body[1:]


# --- meter side ---------------------------------------------------------------


def encode_last_record_answer(
    address: int, memory_address: int, start: datetime, period: timedelta, status: int
) -> bytes:
    """``[addr] [address hi lo] [status] [hh mm DD MM YY] [T] [CRC]``; `start` in the meter's clock.

    The time sent is the end of the interval, `start` + `period`.
    """
    minutes = int(period.total_seconds() // 60)
    return append_crc(
        bytes((address,))
        + memory_address.to_bytes(2, "big")
        + bytes((status,))
        + _time_bytes(start + period)
        + bytes((minutes,))
    )


def encode_record(record: PowerRecord | None) -> bytes:
    """The 15 bytes of a record (None: erased, all FF)."""
    if record is None:
        return b"\xff" * RECORD_LENGTH
    minutes = int(record.period.total_seconds() // 60)
    values = b""
    for channel in CHANNELS:
        value = record.pulses.get(channel)
        values += (NO_VALUE if value is None else min(value, NO_VALUE - 1)).to_bytes(2, "little")
    return bytes((record.status,)) + _time_bytes(record.start + record.period) + bytes((minutes,)) + values


def encode_read_answer(address: int, data: bytes) -> bytes:
    """``[addr] [data] [CRC]``."""
    return append_crc(bytes((address,)) + data)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """``[addr] 06 [memory] [address hi lo] [count] [CRC]`` as a meter receives it."""

    address: int
    memory: int
    memory_address: int
    count: int


def decode_read_request(frame: bytes) -> ReadRequest:
    """A memory read request (command 0x06); `ProtocolError` for another length or command."""
    body = strip_crc(frame)
    if len(body) != READ_REQUEST_LENGTH - 2 or body[1] != READ_MEMORY:
        raise ProtocolError(f"not a memory read request: {frame.hex(' ').upper()}")
    return ReadRequest(body[0], body[2], int.from_bytes(body[3:5], "big"), body[5])
