"""Scheduled polls: one APScheduler job per distinct schedule, which starts the polls of its meters.

Meters are grouped by their schedule's value (the bus's, the default or their own: equal
schedules share a group whichever object holds them). Each group has one `PollTrigger` and one
job of `AsyncIOScheduler` (``coalesce``, ``max_instances=1``, ``misfire_grace_time`` from the
schedule). The job fires at the grid time and starts the group's polls, meters whose last poll
failed first, `START_WAVE` per turn of the event loop; it does not wait for them. For each meter:

* its poll waits its own fresh random part of the schedule's ``jitter`` (`PollTrigger.delay`);
* a meter whose poll of an earlier slot still runs (a silent meter's retries) is left out of this
  slot, so it is never polled twice at once; such meters are counted and logged once a fire;
* when collectors share the buses (`SharedPolling`), only the meters of held leases are polled,
  each once a slot, decided when its poll would start;
* once the collector stops, no waiting poll starts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from amr.collector.bus import Stopping
from amr.collector.poll_slots import slot_start
from amr.collector.result import PollResult
from amr.collector.schedule import PollTrigger, make_trigger
from amr.config import ScheduleConfig
from amr.core.listing import first_few

if TYPE_CHECKING:
    from amr.collector.collector import Collector

log = logging.getLogger("amr.collector")
START_WAVE = 50  # polls started per turn of the event loop (scheduled, and by `Collector.poll_all`)


@dataclass(slots=True)
class PollGroup:
    """The meters polled on one schedule, and its trigger."""

    schedule: ScheduleConfig
    trigger: PollTrigger
    serials: list[str]


def by_schedule(schedules: Mapping[str, ScheduleConfig]) -> list[tuple[ScheduleConfig, list[str]]]:
    """Serials grouped by equal schedules, in first-seen order: first by object (most meters share
    their bus's or the default), then the few distinct objects by value."""
    by_id: dict[int, tuple[ScheduleConfig, list[str]]] = {}
    for serial, schedule in schedules.items():
        entry = by_id.get(id(schedule))
        if entry is None:
            entry = by_id[id(schedule)] = (schedule, [])
        entry[1].append(serial)
    by_value: dict[ScheduleConfig, list[str]] = {}
    for schedule, serials in by_id.values():
        by_value.setdefault(schedule, []).extend(serials)
    return list(by_value.items())


class ScheduledPolls:
    """The scheduler of one collector's polled meters (see the module)."""

    def __init__(self, collector: Collector) -> None:
        """A group, trigger and job per distinct schedule of `collector.schedules`; nothing runs yet."""
        self.collector = collector
        self.groups = [
            PollGroup(schedule, make_trigger(schedule, collector.tz), serials)
            for schedule, serials in by_schedule(collector.schedules)
        ]
        self.scheduler = AsyncIOScheduler(timezone=collector.tz)
        self.skipped = 0  # polls left out because the meter's poll of an earlier slot still ran
        self._waiting: dict[str, asyncio.TimerHandle] = {}  # polls waiting out their jitter

    def triggers(self) -> dict[str, PollTrigger]:
        """Serial → its group's (shared) trigger."""
        return {serial: group.trigger for group in self.groups for serial in group.serials}

    def start(self) -> None:
        """Add a job per group and start the scheduler."""
        for index, group in enumerate(self.groups):
            self.scheduler.add_job(
                self._fire, group.trigger, args=[group], id=f"schedule-{index}",
                name=f"poll {len(group.serials)} meter(s) {group.trigger}", coalesce=True, max_instances=1,
                misfire_grace_time=max(1, int(group.schedule.misfire_grace.total_seconds())),
            )  # fmt: skip
        self.scheduler.start()

    def stop(self) -> None:
        """Fire no more and drop the polls still waiting out their jitter; polls under way go on."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()

    @property
    def waiting(self) -> int:
        """Polls waiting out their jitter."""
        return len(self._waiting)

    async def _fire(self, group: PollGroup) -> None:
        collector = self.collector
        loop = asyncio.get_running_loop()
        slot = slot_start(group.trigger, datetime.now(UTC)) if collector.sharing is not None else None
        busy: list[str] = []
        try:
            for count, serial in enumerate(sorted(group.serials, key=collector.failing_first), 1):
                if collector.stopping.is_set():
                    return
                if collector.is_polling(serial) or serial in self._waiting:
                    busy.append(serial)
                    continue
                delay = group.trigger.delay()
                if delay > 0:
                    self._waiting[serial] = loop.call_later(delay, self._start, serial, slot)
                else:
                    self._start(serial, slot)
                if count % START_WAVE == 0:
                    # let the loop run the polls started so far: one loop turn starting thousands of polls
                    # would hold back every timer (timeouts fire late) and every answer meanwhile
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if not collector.stopping.is_set():
                raise
            # the scheduler's shutdown cancels its jobs; the polls started go on and `stop` waits for them
        finally:
            if busy:
                self.skipped += len(busy)
                log.warning(
                    "%d meter(s) still being polled from an earlier slot, not polled in this one: %s",
                    len(busy), first_few(busy),
                )

    def _start(self, serial: str, slot: datetime | None) -> None:
        """Start the scheduled poll of `serial` (in `slot`, when sharing) unless it may not be made."""
        self._waiting.pop(serial, None)
        collector = self.collector
        if collector.stopping.is_set():
            return
        if collector.sharing is not None and not collector.sharing.may_poll(serial, slot):
            return
        self._poll(serial)

    async def start_now(self, serials: list[str]) -> None:
        """Start the polls of `serials` now (meters of a lease taken over within their slot), in waves;
        does not wait for them."""
        for count, serial in enumerate(serials, 1):
            if self.collector.stopping.is_set():
                return
            self._poll(serial)
            if count % START_WAVE == 0:
                await asyncio.sleep(0)

    def _poll(self, serial: str) -> None:
        collector = self.collector
        if collector.is_polling(serial):
            return  # polled now on request: that poll serves this slot too
        try:
            task = collector.poll_task(serial)
        except Stopping:
            return
        task.add_done_callback(functools.partial(_report_unexpected, serial))


def _report_unexpected(serial: str, task: asyncio.Task[PollResult]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("poll of meter %s failed unexpectedly", serial, exc_info=error)
