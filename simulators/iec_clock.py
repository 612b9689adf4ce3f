"""A virtual IEC 62056-21 meter's answers to W1 writes of its clock (0.9.1 time hhmmss, 0.9.2 date YYMMDD)
and to R5 reads of its logbook P.98.

Each write moves the meter's clock (`VirtualMeter.journal`) so that its time or date reads the
written value, recorded in the clock-correction journal; the answer is ACK, or NAK for anything
else or a value that is not a time or date.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from amr.protocols import iec62056_21 as iec
from amr.protocols.iec62056_21.framing import ETX, STX, with_bcc
from amr.protocols.iec62056_21.logbook import encode_logbook
from simulators.model import VirtualMeter


def write(meter: VirtualMeter, data: str, now: datetime) -> bytes:
    """ACK after writing ``0.9.1(hhmmss)`` or ``0.9.2(YYMMDD)``, NAK otherwise."""
    code, _, rest = data.partition("(")
    value = rest.rstrip(")")
    local = meter.clock(now).astimezone(ZoneInfo(meter.timezone)).replace(tzinfo=None, microsecond=0)
    try:
        if code == "0.9.1":
            to = datetime.combine(local.date(), datetime.strptime(value, "%H%M%S").time())
        elif code == "0.9.2":
            to = datetime.combine(datetime.strptime(value, "%y%m%d").date(), local.time())
        else:
            return bytes((iec.NAK,))
    except ValueError:
        return bytes((iec.NAK,))
    meter.journal.set(local, to)
    return bytes((iec.ACK,))


def logbook(meter: VirtualMeter) -> bytes:
    """``STX P.98(...)(status)()(0) CR LF ... ETX BCC``, or ``P.98(ERROR)`` for an empty logbook."""
    lines = encode_logbook(list(meter.journal.logbook)) or ["P.98(ERROR)"]
    return with_bcc(STX, "".join(f"{line}\r\n" for line in lines).encode("ascii") + bytes((ETX,)))


__all__ = ["logbook", "write"]
