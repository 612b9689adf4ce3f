"""The IEC 62056-21 logbook ``P.98``: the request, its entries, and what their status bits mean.

Read in programming mode (after the password) with the read command R5 and a time range, as
the VDEW specification 2.1 for meters read by IEC 62056-21 (ex DIN EN 61107) defines it (EMH
LZQJ-XC, «Communication and data formats», and other VDEW meters follow it)::

    -> SOH R5 STX P.98(;) ETX BCC                      every entry (or P.98(ZYYMMDDhhmm;ZYYMMDDhhmm))
    <- STX P.98(ZYYMMDDhhmmss)(SSSSSSSS)()(0) CR LF ... ETX BCC

Each entry is one line: its time (Z season: 0 normal time, 1 summer time, 2 UTC; then year,
month, day, hour, minute, second), its status word (8 hex digits), an empty period and the
number of values that follow (0 for a pure logbook entry). A meter with no entry answers
``P.98(ERROR)`` or an empty block.

Status bits of the VDEW status word (the same in load profile and logbook), those mapped to
events here:

==========  ===========================================  ======================
bit         meaning                                      event
==========  ===========================================  ======================
0x00000080  failure of the supply voltage                ``power.off``
0x00000040  recovery of the supply voltage               ``power.on``
0x00000020  the device clock was set                     ``clock.changed``
0x00000001  fatal device error                           ``diagnostic.error``
==========  ===========================================  ======================

An entry with none of them (season change 0x08, configuration changed 0x100, logbook or load
profile cleared 0x2000/0x4000 ...) is kept as ``other`` with its status in the detail.

Checked against a public implementation (November 2026): the EnergyICT protocol library (public
copy in the repository chandangeek/Connexo_Code), class ``com.energyict.protocolimpl.dlms.DLMSZMD``,
names the same bits of this status word «as interpreted by MV90 for the Siemens ZMD»: 0x01 fatal
error, 0x04 corrupted measurement, 0x08 summer/winter, 0x20 time/date adjusted, 0x40 power up,
0x80 power down, 0x2000 event log cleared, 0x4000 load profile cleared. All bits used here agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from amr.core.events import MeterEvent
from amr.errors import ProtocolError
from amr.protocols.iec62056_21.framing import ascii_text, check_block
from amr.protocols.iec62056_21.messages import CommandMessage, encode_command

LOGBOOK = "P.98"
BITS: tuple[tuple[int, str], ...] = (
    (0x00000080, "power.off"),
    (0x00000040, "power.on"),
    (0x00000020, "clock.changed"),
    (0x00000001, "diagnostic.error"),
)
_ENTRY = re.compile(r"P\.98\((?P<z>[0-2])(?P<stamp>\d{12})\)\((?P<status>[0-9A-Fa-f]{1,8})\)\([^()]*\)\((?P<n>\d+)\)")


def encode_logbook_request() -> bytes:
    """``SOH R5 STX P.98(;) ETX BCC``: every entry of the logbook."""
    return encode_command(CommandMessage("R", "5", f"{LOGBOOK}(;)"))


@dataclass(frozen=True, slots=True)
class LogbookEntry:
    """One entry: its time as the meter wrote it, the season digit and the status word."""

    local: datetime  # naive
    season: int  # 0 normal time, 1 summer time, 2 UTC
    status: int
    line: str

    def utc(self, tz: tzinfo) -> datetime:
        """The entry's time in UTC: as written for season 2, else in the meter's zone `tz`."""
        return self.local.replace(tzinfo=UTC if self.season == 2 else tz).astimezone(UTC)


def decode_logbook(block: bytes) -> list[LogbookEntry]:
    """The entries of the answer to `encode_logbook_request` (BCC checked); none for ``P.98(ERROR)``."""
    text = ascii_text(check_block(block), "logbook")
    entries = []
    for line in text.replace("\r", "").split("\n"):
        line = line.strip("\x02\x03!").strip()
        if not line.startswith(LOGBOOK) or line.startswith(f"{LOGBOOK}(ERROR"):
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise ProtocolError(f"logbook entry {line!r} is not P.98(ZYYMMDDhhmmss)(status)()(n)")
        stamp = match["stamp"]
        try:
            local = datetime.strptime(stamp, "%y%m%d%H%M%S")
        except ValueError:
            raise ProtocolError(f"logbook entry {line!r}: {stamp} is not a time") from None
        entries.append(LogbookEntry(local, int(match["z"]), int(match["status"], 16), line))
    return entries


def encode_logbook(entries: list[tuple[datetime, int]]) -> list[str]:
    """The lines of a logbook answer for (naive local time, status) pairs (the simulator's side)."""
    return [f"{LOGBOOK}(0{at:%y%m%d%H%M%S})({status:08X})()(0)" for at, status in entries]


def events_of(serial: str, entries: list[LogbookEntry], tz: tzinfo) -> list[MeterEvent]:
    """One event per mapped status bit of each entry; an entry without one is ``other``."""
    found: list[MeterEvent] = []
    for entry in entries:
        at = entry.utc(tz)
        raw = {"protocol": "iec62056-21", "logbook": LOGBOOK, "status": f"{entry.status:08X}", "line": entry.line}
        codes = [code for bit, code in BITS if entry.status & bit]
        if not codes:
            found.append(MeterEvent(serial, at, "other", raw, "meter", f"P.98 status {entry.status:08X}"))
        found += [MeterEvent(serial, at, code, raw, "meter") for code in codes]
    found.sort(key=lambda e: (e.ts, e.code))
    return found


__all__ = ["BITS", "LogbookEntry", "decode_logbook", "encode_logbook", "encode_logbook_request", "events_of"]
