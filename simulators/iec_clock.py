"""A virtual IEC 62056-21 meter's answer to W1 writes of its clock (0.9.1 time hhmmss, 0.9.2 date YYMMDD).

Each write moves the meter's clock (`VirtualMeter.journal`) so that its time or date reads the
written value, recorded in the clock-correction journal; the answer is ACK, or NAK for anything
else or a value that is not a time or date.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from amr.protocols import iec62056_21 as iec
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


__all__ = ["write"]
