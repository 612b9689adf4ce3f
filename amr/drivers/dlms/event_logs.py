"""Reading the DLMS/COSEM (СПОДЭС) event logs 0.0.99.98.x.255 (`amr.drivers.journal.JournalReader`).

In one association with the meter's configured client, each journal of `journal.JOURNALS` is read
(buffer, attribute 2 of the class 7 object) and decoded by `journal.events_from_buffer`. The first
read of a journal takes its whole buffer; later ones only the entries from the newest event read
before (selective access by a range of the clock column, access selector 1, as for the load
profile: `profile.clock_range`), that event included, so the store (which keeps each event once)
loses nothing stamped in the same second. A journal the meter lacks (object-undefined and kin) is
skipped; if it lacks them all, `DeviceError` ``dlms.object_unavailable``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import TYPE_CHECKING

from amr.config import MeterConfig
from amr.core.events import MeterEvent
from amr.drivers.dlms import errors
from amr.drivers.dlms.journal import JOURNALS, events_from_buffer, journal_obis
from amr.drivers.dlms.profile import clock_range
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import MeterLink
from amr.errors import DeviceError

if TYPE_CHECKING:
    from amr.drivers.dlms.workers import Workers

PROFILE_GENERIC, BUFFER = 7, 2
AHEAD = timedelta(days=366)  # the range's end: past anything a meter's clock could stamp


def read(session: Session, link: MeterLink, site: tzinfo, since: dict[tuple[str, int], datetime]) -> list[MeterEvent]:
    """Every journal's events (from the newest one read before, per `since`), oldest first."""
    found: list[MeterEvent] = []
    missing: list[str] = []
    for journal in JOURNALS:
        start = since.get((link.serial, journal))
        access = None if start is None else clock_range(start, datetime.now(UTC) + AHEAD, site)
        try:
            buffer = session.get(PROFILE_GENERIC, journal_obis(journal), BUFFER, access)
        except DeviceError as exc:
            if exc.code != errors.OBJECT_UNAVAILABLE:
                raise
            missing.append(journal_obis(journal))
            continue
        events = events_from_buffer(link.serial, journal, buffer, site)
        if events:
            since[(link.serial, journal)] = max(e.ts for e in events)
        found += events
    if len(missing) == len(JOURNALS):
        raise errors.device(f"the meter has none of the event logs {missing[0]}..{missing[-1]}",
                            errors.OBJECT_UNAVAILABLE)
    found.sort(key=lambda e: e.ts)
    return found


class DlmsJournals:
    """The ``journal`` capability of the DLMS drivers."""

    workers: Workers
    tz: tzinfo

    async def read_journal(self, meter: MeterConfig) -> list[MeterEvent]:
        """The events of every event log the meter has, in one association."""
        from amr.drivers.dlms import operations

        since: dict[tuple[str, int], datetime] = self.__dict__.setdefault("_journal_since", {})
        return await self.workers.run(operations.in_session, self, meter, partial(read, site=self.tz, since=since))


__all__ = ["DlmsJournals", "read"]
