"""The collector's interval upkeep: every ``[intervals] estimate_every`` (off when unset), over the last
``[intervals] estimate_back``, for each meter it collects:

1. a meter polled over a protocol that keeps no profile (Modbus, DLMS): intervals **derived** from its
   register readings where two of them bracket interval edges (`amr.validation.derived`);
2. every meter: the gaps left **estimated** (`amr.validation.estimation`) — for a meter whose profile
   is back-filled, only before its back-fill position (``read_until``, the earliest of its channels):
   what lies before it was read, or the meter had no record of it, or it was lost beyond the meter's
   memory, so only estimation can fill it; what lies after it back-fill has still to read;
3. every meter: the **sum check** kept (`amr.store.sum_checks`): pairs of register readings whose
   intervals do not add up to their delta, listed for the dispatcher and counted in ``/metrics``.

The store never lets a derived or estimated value replace a measured one, and a value made twice
is a duplicate, so two collectors doing this at once on the same meters only repeat each other. With
shared buses (leases) a collector keeps up only the meters whose lease it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from amr.collector.bus import describe
from amr.drivers.registry import PROTOCOLS
from amr.store.backfill_state import BackfillState
from amr.store.derived import derive_meter, without_profile
from amr.store.estimates import estimate_meter
from amr.store.sum_checks import record_sum_check

if TYPE_CHECKING:
    from amr.collector.collector import Collector

log = logging.getLogger("amr.intervals")


@dataclass(slots=True)
class UpkeepReport:
    """What one pass did, over all meters."""

    derived: int = 0
    estimated: int = 0
    mismatches: int = 0  # sum checks failed (kept for the dispatcher)
    meters: int = 0
    errors: int = 0


class IntervalUpkeep:
    """Derives and estimates the intervals of a collector's meters on a schedule (see the module)."""

    def __init__(self, collector: Collector, *, clock: Callable[[], datetime] | None = None) -> None:
        self.collector = collector
        self.app = collector.app
        self.clock = clock or (lambda: datetime.now(UTC))
        config = self.app.config
        self.every = config.intervals.estimate_every
        self.derived = without_profile(config) & set(collector.meters)
        self.backfilled = {
            serial
            for serial, worker in collector.polled.items()
            if config.backfill.enabled and "profiles" in getattr(PROTOCOLS.get(worker.bus.kind), "capabilities", ())
        }

    def _mine(self, serial: str) -> bool:
        sharing = self.collector.sharing
        return sharing is None or serial not in sharing.unit_of or sharing.allows(serial)()

    def run_once(self) -> UpkeepReport:
        """One pass over the collector's meters (blocking: run it in a thread)."""
        now = self.clock()
        start = now - self.app.config.intervals.estimate_back
        report = UpkeepReport()
        rules = self.app.interval_rules()
        positions = BackfillState(self.app.store).load(self.backfilled) if self.backfilled else {}
        for serial in sorted(self.collector.meters):
            meter = self.app.meters.get(serial)
            if meter is None or not self._mine(serial):
                continue
            try:
                end = now
                if serial in self.derived:
                    report.derived += derive_meter(self.app.store, meter, self.app.config.intervals, start, now,
                                                   now, rules).accepted
                elif serial in self.backfilled:
                    progress = positions.get(serial)
                    if not progress:
                        continue  # never back-filled yet: its gaps are back-fill's first
                    end = min(p.read_until for p in progress.values())
                if end > start:
                    _, written = estimate_meter(self.app.store, meter, self.app.config.intervals,
                                                self.app.config.site.tz, start, end, now, rules)
                    report.estimated += written.accepted + written.replaced
                report.mismatches += len(record_sum_check(self.app.store, meter, start, now, now))
                report.meters += 1
            except Exception as exc:  # the store or one meter's data: log it, go on with the others
                report.errors += 1
                log.warning("meter %s: interval upkeep: %s", serial, describe(exc))
        return report

    async def run(self) -> None:
        """A pass now, then one every ``estimate_every`` until the collector stops."""
        assert self.every is not None
        stopping = self.collector.stopping
        while not stopping.is_set():
            report = await asyncio.to_thread(self.run_once)
            if report.derived or report.estimated or report.mismatches or report.errors:
                log.info(
                    "intervals: %d derived from registers, %d estimated, %d sum mismatch(es) over %d meter(s), "
                    "%d error(s)", report.derived, report.estimated, report.mismatches, report.meters, report.errors,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.every.total_seconds())

