"""Intervals derived right after polls, for meters whose protocol keeps no profile (`amr.validation.derived`).

After a poll of such a meter, once an interval edge has become settled since the last derivation
(more than ``[intervals] edge_tolerance`` past), the intervals up to it are derived from the meter's
stored register readings: the poll's own reading is already written (`Collector._poll` awaits the
writer before its listeners run). So it costs one short read of the series' tail per meter and
interval length, not per poll. The first time (and after a failure) it looks `FIRST_LOOK` back;
older intervals are derived by `amr estimate` and the collector's upkeep (`amr.collector.interval_upkeep`).
A failure is logged and tried again after the next poll; the poll itself is never affected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from amr.collector.bus import describe
from amr.collector.result import PollResult
from amr.core.intervals import DEFAULT_INTERVAL
from amr.store.derived import derive_meter, without_profile
from amr.validation.derived import ceil_edge

if TYPE_CHECKING:
    from amr.collector.collector import Collector

log = logging.getLogger("amr.intervals")
FIRST_LOOK = timedelta(hours=2)
"""How far back the first derivation after start goes."""


class PollDerivation:
    """The collector's poll listener that derives intervals of meters without profiles (see the module)."""

    def __init__(self, collector: Collector, *, clock: Callable[[], datetime] | None = None) -> None:
        self.app = collector.app
        self.clock = clock or (lambda: datetime.now(UTC))
        self.serials = without_profile(self.app.config) & set(collector.polled)
        self.done: dict[str, datetime] = {}  # serial → the settled edge intervals were derived up to
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_poll(self, result: PollResult) -> None:
        """Derive what became settled since the last time, in a task of its own."""
        serial = result.serial
        if result.values is None or serial not in self.serials or serial in self._busy:
            return
        settled = ceil_edge(self.clock() - self.app.config.intervals.edge_tolerance, DEFAULT_INTERVAL)
        settled -= DEFAULT_INTERVAL
        last = self.done.get(serial)
        if last is not None and last >= settled:
            return
        start = (last if last is not None else settled - FIRST_LOOK) - DEFAULT_INTERVAL
        self._busy.add(serial)
        task = asyncio.get_running_loop().create_task(self._derive(serial, start, settled), name=f"amr-derive-{serial}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _derive(self, serial: str, start: datetime, settled: datetime) -> None:
        try:
            meter = self.app.meters.get(serial)
            if meter is None:
                return
            now = self.clock()
            written = await asyncio.to_thread(
                derive_meter, self.app.store, meter, self.app.config.intervals, start, settled, now,
                self.app.interval_rules(),
            )  # fmt: skip
            self.done[serial] = settled
            if written.accepted or written.refused:
                log.debug("meter %s: %d interval(s) derived from registers, %d refused", serial, written.accepted,
                          len(written.refused))
        except Exception as exc:  # the store: try again after the next poll
            log.warning("meter %s: intervals not derived from registers: %s", serial, describe(exc))
        finally:
            self._busy.discard(serial)

    async def close(self) -> None:
        """Wait for derivations under way (each one short transaction)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
