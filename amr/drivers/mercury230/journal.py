"""Mercury 230 event journals: the time arrays of command 04, as normalised events.

One session reads the ten records of each journal below (``04 NN RR``, RR 0..9; 60 requests
of 6 bytes, 15-byte answers: about 2 s of line time at 9600 baud). Each record is a pair of
times in the meter's local time (`amr.protocols.mercury230_time`); a time never written
(all zero bytes) gives no event. A journal the meter refuses (status 1: a model without
it) is left out and named in the result's `missing`; the others are kept.

=====  ==============================  =========================  =========================
array  journal                         first time of the pair     second time
=====  ==============================  =========================  =========================
01     meter on / off                  ``power.off``              ``power.on``
02     clock corrections               before (raw)               ``clock.changed``
03-05  phase 1..3 voltage              ``power.phase_off``        ``power.phase_on``
12     cover                           ``tamper.cover_opened``    ``tamper.cover_closed``
=====  ==============================  =========================  =========================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from amr.config import MeterConfig
from amr.core.events import MeterEvent
from amr.drivers.mercury230.clock import MercurySession, in_session
from amr.errors import DeviceError
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_time as mt

if TYPE_CHECKING:
    from amr.drivers.mercury230.driver import Mercury230Driver

A = mt.TimeArray
JOURNALS: dict[int, tuple[str | None, str | None, str]] = {  # array → (first code, second code, detail)
    A.POWER: ("power.off", "power.on", ""),
    A.CLOCK_CORRECTION: (None, "clock.changed", ""),
    A.PHASE_1: ("power.phase_off", "power.phase_on", "phase 1"),
    A.PHASE_2: ("power.phase_off", "power.phase_on", "phase 2"),
    A.PHASE_3: ("power.phase_off", "power.phase_on", "phase 3"),
    A.COVER: ("tamper.cover_opened", "tamper.cover_closed", ""),
}


@dataclass(slots=True)
class JournalRead:
    """What one session read: the events, oldest first, and the journals the meter refused."""

    events: list[MeterEvent] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


def events_of_record(
    serial: str, array: int, record: int, pair: mt.TimeRecord, session: MercurySession
) -> list[MeterEvent]:
    """The events of one record of one time array."""
    first_code, second_code, detail = JOURNALS[array]
    raw = {"protocol": "mercury230", "array": f"{array:02X}", "record": record, "bytes": pair.raw.hex(" ").upper()}
    found: list[MeterEvent] = []
    if first_code is not None and pair.first is not None:
        found.append(MeterEvent(serial, session.utc(pair.first), first_code, raw, "meter", detail))
    if second_code is not None and pair.second is not None:
        extra = detail
        if array == A.CLOCK_CORRECTION and pair.first is not None:
            extra = f"from {pair.first:%Y-%m-%d %H:%M:%S}"
        found.append(MeterEvent(serial, session.utc(pair.second), second_code, raw, "meter", extra))
    return found


def read_journal(driver: Mercury230Driver, meter: MeterConfig) -> JournalRead:
    """Every record of the journals the meter keeps, as events."""

    def work(session: MercurySession) -> JournalRead:
        result = JournalRead()
        for array in JOURNALS:
            try:
                for record in range(mt.RECORDS):
                    answer = session.ask(mt.encode_read_record(session.address, array, record))
                    pair = mt.decode_record_answer(answer, session.address)
                    result.events += events_of_record(meter.serial, array, record, pair, session)
            except merc.MercuryStatusError as exc:
                if exc.status != merc.Status.ILLEGAL_COMMAND:
                    raise
                result.missing[f"journal {array:02X}"] = str(exc)
        result.events.sort(key=lambda e: (e.ts, e.code))
        return result

    read = in_session(driver, meter, work)
    if not read.events and len(read.missing) == len(JOURNALS):
        raise DeviceError(f"meter {meter.serial}: keeps none of the journals asked for", code="mercury.no_journal")
    return read


__all__ = ["JOURNALS", "JournalRead", "events_of_record", "read_journal"]
