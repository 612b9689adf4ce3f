"""IEC 62056-21 logbook ``P.98`` read as events: programming mode, the password, R5, break.

    -> (sign-on, option select Y = 1, P0, P1 password, ACK: `amr.drivers.iec62056_21.clock`)
    -> SOH R5 STX P.98(;) ETX BCC
    <- STX P.98(ZYYMMDDhhmmss)(SSSSSSSS)()(0) CR LF ... ETX BCC      (NAK: the meter has no logbook)
    -> SOH B0 ETX BCC

Entries and their status bits: `amr.protocols.iec62056_21.logbook`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amr.config import MeterConfig
from amr.core.events import MeterEvent
from amr.drivers.iec62056_21.clock import ProgrammingSession
from amr.errors import DeviceError
from amr.protocols import iec62056_21 as iec
from amr.protocols.iec62056_21.logbook import decode_logbook, encode_logbook_request, events_of

if TYPE_CHECKING:
    from amr.drivers.iec62056_21.driver import Iec62056Driver


def read_journal(driver: Iec62056Driver, meter: MeterConfig) -> list[MeterEvent]:
    """Every entry of the meter's logbook, as events."""
    with driver._lock:
        session = ProgrammingSession(driver, meter)
        try:
            answer = driver._block(encode_logbook_request(), session.timeout)
        finally:
            session.close()
    if answer == bytes((iec.NAK,)):
        raise DeviceError(f"meter {meter.serial}: the meter refused to read its logbook P.98 (NAK)",
                          code="iec.no_logbook")
    return events_of(meter.serial, decode_logbook(answer), driver.tz)


__all__ = ["read_journal"]
