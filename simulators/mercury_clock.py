"""A virtual Mercury 230's answers to the clock and journal commands (03 0C, 03 0D, 04 NN).

The meter's local time is its clock (drift and corrections included, `VirtualMeter.clock`) in
its zone. A correction (03 0D, user level) moves the clock at most ±4 minutes once a day and
is otherwise refused with status 4 (already corrected) or 1 (too far); setting the time
(03 0C) needs the channel opened at the admin level (status 3 otherwise). Journals (04 NN RR)
answer the records of `VirtualMeter.journal`.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from amr.errors import ProtocolError
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_time as mt
from simulators.meter_journal import AlreadyCorrected, OutOfRange
from simulators.model import VirtualMeter

JOURNAL_ARRAYS = frozenset(int(a) for a in mt.TimeArray if a != mt.TimeArray.CLOCK)


def local_clock(meter: VirtualMeter, now: datetime) -> datetime:
    """The meter's clock as its naive local time, whole seconds."""
    return meter.clock(now).astimezone(ZoneInfo(meter.timezone)).replace(tzinfo=None, microsecond=0)


def answer(meter: VirtualMeter, request: merc.UnknownRequest, admin: bool, now: datetime) -> bytes:
    """The answer to a 03 or 04 request of an open channel (`admin`: opened at level 2)."""
    address, params = request.address, request.parameters
    status = merc.Status.ILLEGAL_COMMAND
    local = local_clock(meter, now)
    if request.command == mt.READ_TIMES and params == bytes((mt.TimeArray.CLOCK,)):
        return mt.encode_clock_answer(address, local)
    if request.command == mt.READ_TIMES and len(params) == 2 and params[0] in JOURNAL_ARRAYS:
        if params[1] < mt.RECORDS:
            return mt.encode_record_answer(address, *meter.journal.record(params[0], params[1]))
    elif request.command == mt.WRITE_PARAMETER:
        try:
            write = mt.decode_clock_write(params)
        except ProtocolError:
            return merc.encode_status_answer(address, status)
        if write.correct_to is not None:
            try:
                meter.journal.correct(local, datetime.combine(local.date(), write.correct_to))
                status = merc.Status.OK
            except AlreadyCorrected:
                status = merc.Status.CLOCK_ALREADY_CORRECTED
            except OutOfRange:
                status = merc.Status.ILLEGAL_COMMAND
        elif write.local is not None:
            if admin:
                meter.journal.set(local, write.local)
                status = merc.Status.OK
            else:
                status = merc.Status.ACCESS_DENIED
    return merc.encode_status_answer(address, status)


__all__ = ["answer", "local_clock"]
