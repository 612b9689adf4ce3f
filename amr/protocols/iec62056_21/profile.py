"""IEC 62056-21 load profile ``P.01``: the request by time range and the answer, as text.

In programming mode (after the password) the HHU asks with a read command, type 5::

    <SOH>R5<STX>P.01(ZYYMMDDhhmm;ZYYMMDDhhmm)<ETX><BCC>        from; to (either may be empty)

and the meter answers with the profile, one or more blocks (a long answer comes in partial blocks
ended by EOT, each acknowledged by the HHU with ACK, the last ended by ETX)::

    <STX>P.01(ZYYMMDDhhmm[ss])(SS)(RP)(z)(K1)(E1)...(Kz)(Ez)<CR><LF>
    (v1)...(vz)<CR><LF>
    (v1)...(vz)<CR><LF>
    P.01(...)(SS)...                  a new header where the status changes (power failure, clock set)
    ...<ETX><BCC>

(the layout of the IEC 62056-21 load profile, as the VDEW specification for load profile meters
and DIN 43863-3 define it, and as EMH and Metcom meters send it:
``P.01(1220823161500)(00000000)(15)(6)(1.5)(kW)(2.5)(kW)(5.5)(kvar)...``). Z is the season of the
time stamp: 0 normal (winter) time, 1 summer time, 2 UTC. The header's time is the **end** of the
first period after it, each further value line one registration period (RP, minutes) later. SS is
the status, hexadecimal (2 or 8 digits); its low byte holds the VDEW status bits of the first
period of the block: 0x80 power failure, 0x20 clock set, 0x08 summer time (not a fault), 0x04
data not valid, 0x02 clock not valid, 0x01 fatal error. Kn are the channels' OBIS codes (with or
without the ``1-0:`` prefix, the D group 5 an average power, 9 or 29 an energy per period), En
their units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from amr.core.domain import Channel
from amr.core.intervals import ProfileFlag
from amr.errors import ProtocolError

PROFILE = "P.01"
SEASONS = {"0": "normal", "1": "summer", "2": "UTC"}
_HEADER = re.compile(
    r"P\.01\((?P<stamp>\d{11}(?:\d\d)?)\)\((?P<status>[0-9A-Fa-f]{1,8})\)\((?P<period>\d+)\)\((?P<n>\d+)\)"
)
_FIELD = re.compile(r"\(([^()]*)\)")
STATUS_FLAGS: dict[int, ProfileFlag] = {
    0x80: ProfileFlag.POWER_FAILURE,
    0x20: ProfileFlag.CLOCK_CHANGED,
    0x04: ProfileFlag.INVALID,
    0x02: ProfileFlag.INVALID,
    0x01: ProfileFlag.INVALID,
}
_POWER_UNITS = {"kw": 1000, "w": 1, "kvar": 1000, "var": 1}
_ENERGY_UNITS = {"kwh": 1000, "wh": 1, "kvarh": 1000, "varh": 1}
_CHANNEL_OF_C = {1: Channel.A_PLUS, 2: Channel.A_MINUS, 3: Channel.R_PLUS, 4: Channel.R_MINUS}
_QUADRANTS = {5: Channel.R_PLUS, 6: Channel.R_PLUS, 7: Channel.R_MINUS, 8: Channel.R_MINUS}  # Q1+Q2, Q3+Q4


def stamp(moment: datetime, tz: tzinfo) -> str:
    """``ZYYMMDDhhmm`` of an aware time in the meter's zone `tz` (Z 2 when the zone is UTC)."""
    if tz is UTC:
        return f"2{moment.astimezone(UTC):%y%m%d%H%M}"
    local = moment.astimezone(tz)
    return f"{'1' if local.dst() else '0'}{local:%y%m%d%H%M}"


def parse_stamp(text: str, tz: tzinfo) -> datetime:
    """An aware UTC time from ``ZYYMMDDhhmm[ss]``; the season picks the hour a clock change repeats."""
    season, digits = text[0], text[1:]
    if season not in SEASONS or len(digits) not in (10, 12):
        raise ProtocolError(f"a P.01 time is ZYYMMDDhhmm[ss] with Z 0, 1 or 2; got {text!r}")
    try:
        naive = datetime.strptime(digits[:10], "%y%m%d%H%M").replace(second=int(digits[10:] or 0))
    except ValueError:
        raise ProtocolError(f"P.01 time {text!r} is not a time") from None
    if season == "2":
        return naive.replace(tzinfo=UTC)
    for fold in (0, 1):  # in the repeated hour, the summer-time reading is the first
        local = naive.replace(tzinfo=tz, fold=fold)
        if bool(local.dst()) == (season == "1") or fold == 1:
            return local.astimezone(UTC)
    raise AssertionError("unreachable")


def request_data(start: datetime | None, end: datetime | None, tz: tzinfo) -> str:
    """``P.01(from;to)`` for a read command R5; a missing bound is left empty."""
    first = "" if start is None else stamp(start, tz)
    last = "" if end is None else stamp(end, tz)
    return f"{PROFILE}({first};{last})"


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One period of a P.01 answer: its end (UTC), length, status and the values by OBIS code."""

    end: datetime
    period: timedelta
    status: int
    values: dict[str, tuple[Decimal, str]]  # OBIS code as sent → (value, unit)

    @property
    def start(self) -> datetime:
        """The period's start."""
        return self.end - self.period

    @property
    def flags(self) -> ProfileFlag:
        """The VDEW status bits as flags."""
        found = ProfileFlag.NONE
        for bit, flag in STATUS_FLAGS.items():
            if self.status & bit:
                found |= flag
        return found

    def energy(self) -> dict[Channel, Fraction]:
        """Exact Wh/varh per channel: energies as they are, average powers × the period; R from
        quadrants (5+6, 7+8) only when no 3.x / 4.x channel is sent."""
        direct: dict[Channel, Fraction] = {}
        quadrants: dict[Channel, Fraction] = {}
        hours = Fraction(int(self.period.total_seconds()), 3600)
        for code, (value, unit) in self.values.items():
            group_c, _group_d = _groups(code)
            per = unit.lower()
            if per in _ENERGY_UNITS:
                wh = Fraction(value) * _ENERGY_UNITS[per]
            elif per in _POWER_UNITS:
                wh = Fraction(value) * _POWER_UNITS[per] * hours
            else:
                continue  # volts, amperes, ...: not energy
            if group_c in _CHANNEL_OF_C:
                direct[_CHANNEL_OF_C[group_c]] = direct.get(_CHANNEL_OF_C[group_c], Fraction(0)) + wh
            elif group_c in _QUADRANTS:
                quadrants[_QUADRANTS[group_c]] = quadrants.get(_QUADRANTS[group_c], Fraction(0)) + wh
        for channel, wh in quadrants.items():
            direct.setdefault(channel, wh)
        return direct


def _groups(code: str) -> tuple[int, int]:
    """OBIS groups C and D of ``1.5``, ``1.5.0`` or ``1-0:1.5.0``."""
    parts = code.rpartition(":")[2].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ProtocolError(f"P.01 channel {code!r} is not an OBIS code") from None


def decode_profile(text: str, tz: tzinfo) -> list[ProfileEntry]:
    """The periods of a P.01 answer's text (the block contents without STX/ETX; parts joined)."""
    entries: list[ProfileEntry] = []
    codes: list[tuple[str, str]] = []
    moment: datetime | None = None
    period = timedelta(0)
    status = 0
    for line in (part.strip() for part in text.split("\r\n")):
        if not line:
            continue
        if line.startswith(PROFILE):
            header = _HEADER.match(line)
            if header is None:
                if "ERROR" in line.upper():
                    return entries  # no data in the range
                raise ProtocolError(f"cannot read the P.01 header {line!r}")
            fields = _FIELD.findall(line[header.end() :])
            count = int(header["n"])
            if len(fields) != 2 * count:
                raise ProtocolError(f"P.01 header names {count} channels but gives {len(fields)} fields: {line!r}")
            codes = list(zip(fields[0::2], fields[1::2], strict=True))
            period = timedelta(minutes=int(header["period"]))
            if not period:
                raise ProtocolError(f"P.01 header with a registration period of 0 minutes: {line!r}")
            moment = parse_stamp(header["stamp"], tz)
            status = int(header["status"], 16) & 0xFF
            continue
        if moment is None:
            raise ProtocolError(f"P.01 values before any header: {line!r}")
        values = _FIELD.findall(line)
        if len(values) != len(codes) or _FIELD.sub("", line):
            raise ProtocolError(f"P.01 value line {line!r} does not give the header's {len(codes)} values")
        try:
            parsed = {code: (Decimal(v), unit) for (code, unit), v in zip(codes, values, strict=True)}
        except InvalidOperation:
            raise ProtocolError(f"P.01 value line {line!r} has a value that is not a number") from None
        entries.append(ProfileEntry(moment, period, status, parsed))
        moment, status = moment + period, 0
    return entries


def encode_profile(entries: list[ProfileEntry], tz: tzinfo) -> str:
    """The text of a P.01 answer: a header before the first entry, after a gap in time and before any
    entry with a status, as meters send it (the simulator's side)."""
    lines: list[str] = []
    expected: datetime | None = None
    for entry in entries:
        if entry.end != expected or entry.status:
            head = "".join(f"({code})({unit})" for code, (_, unit) in entry.values.items())
            lines.append(
                f"{PROFILE}({stamp(entry.end, tz)})({entry.status:02X})({int(entry.period.total_seconds() // 60)})"
                f"({len(entry.values)}){head}"
            )
        lines.append("".join(f"({value})" for value, _ in entry.values.values()))
        expected = entry.end + entry.period
    return "".join(line + "\r\n" for line in lines)
