"""A virtual meter's clock corrections and event journals (Mercury 230 time arrays).

`MeterJournal` keeps an IEC 62056-21 logbook (P.98 entries: local time and VDEW status word) and,
per Mercury time array (`amr.protocols.mercury230_time.TimeArray`), a ring of
ten records, each a pair of local times, newest written over the oldest as a meter does. It
also keeps the clock's corrections: the shift applied so far and the local day of the last
correction, which a Mercury meter allows once a day (`correct`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from amr.protocols.mercury230_time import MAX_CORRECTION_S, RECORDS, TimeArray

CLOCK_SET = 0x20  # the VDEW status bit of an IEC logbook entry: the device clock was set


class AlreadyCorrected(Exception):
    """The clock was corrected today already (a Mercury meter answers status 4)."""


class OutOfRange(Exception):
    """The correction is beyond ±4 minutes (a Mercury meter answers status 1)."""


@dataclass
class MeterJournal:
    """Clock shift and time-array records of one virtual meter; thread-safe."""

    shift: timedelta = timedelta(0)  # corrections applied to the meter's clock so far
    corrected_on: date | None = None  # the meter's local day of its last correction
    records: dict[int, list[tuple[datetime | None, datetime | None]]] = field(default_factory=dict)
    logbook: list[tuple[datetime, int]] = field(default_factory=list)  # IEC P.98: (local time, VDEW status)
    _next: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, array: TimeArray | int, first: datetime | None, second: datetime | None) -> None:
        """Write a record (naive local times) over the oldest one of `array`."""
        with self._lock:
            ring = self.records.setdefault(int(array), [(None, None)] * RECORDS)
            at = self._next.get(int(array), 0)
            ring[at] = (first, second)
            self._next[int(array)] = (at + 1) % RECORDS

    def record(self, array: int, number: int) -> tuple[datetime | None, datetime | None]:
        """Record `number` (0..9) of `array`; (None, None) when never written."""
        with self._lock:
            return self.records.get(array, [(None, None)] * RECORDS)[number]

    def correct(self, local_now: datetime, to: datetime) -> None:
        """Move the clock from `local_now` to `to` (both the meter's local time) under Mercury's rules."""
        by = to - local_now
        if abs(by) > timedelta(seconds=MAX_CORRECTION_S):
            raise OutOfRange(f"{by.total_seconds():+.0f} s is beyond ±{MAX_CORRECTION_S} s")
        with self._lock:
            if self.corrected_on == local_now.date():
                raise AlreadyCorrected("already corrected today")
            self.shift += by
            self.corrected_on = local_now.date()
        self.add(TimeArray.CLOCK_CORRECTION, local_now, to)

    def set(self, local_now: datetime, to: datetime) -> None:
        """Set the clock outright (Mercury's 03 0C at the admin level, IEC's W1 0.9.1 / 0.9.2)."""
        with self._lock:
            self.shift += to - local_now
            self.logbook.append((to, CLOCK_SET))
        self.add(TimeArray.CLOCK_CORRECTION, local_now, to)


__all__ = ["AlreadyCorrected", "MeterJournal", "OutOfRange"]
