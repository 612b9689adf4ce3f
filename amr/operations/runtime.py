"""Clock checks and journal reads in the running collector, after the polls.

`MeterOperations` listens to the collector's finished polls (`Collector.on_poll`). After a
poll that read values:

* a poll that reported the meter's clock (IEC 62056-21 ``0.9.1``/``0.9.2``, DLMS) gives the drift
  at no cost: it is recorded every time and acted on by the policy (`amr.operations.clock`);
* a meter whose driver keeps the clock but whose poll does not report it (Mercury 230) has its
  clock read in a session of its own once ``[clock] check_every`` has passed;
* a meter whose driver reads journals has them read once ``[events] read_every`` has passed;
  new events are stored once (`amr.store.events`) and alarming ones wake the alarm sender.

Each runs as a task of its own, so a poll's result is never held up; `close` waits for them.
A failure is logged and tried again after the next poll. `serve_requests` carries out the clock
corrections dispatchers asked for through an API running in another process (table
``clock_requests``), each audited with its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from amr.config import MeterConfig
from amr.core.events import MeterEvent
from amr.drivers.clock import ClockKeeper, ClockReading
from amr.drivers.journal import JournalReader
from amr.errors import AmrError, NotFound
from amr.operations.clock import ClockOutcome, ClockService
from amr.store.audit_trail import audit
from amr.store.events import ClockRequest, clock_requests, drop_clock_request, load_clock, save_events
from amr.store.store import translate_errors

if TYPE_CHECKING:
    from amr.app import App
    from amr.collector.collector import Collector
    from amr.collector.result import PollResult
    from amr.drivers.base import PollDriver

log = logging.getLogger("amr.operations")


def due(last: datetime | None, every: timedelta | None, now: datetime) -> bool:
    """True when `every` is set and has passed since `last` (or nothing was done yet)."""
    return every is not None and (last is None or now - last >= every)


class MeterOperations:
    """The clock and journal work of one collector."""

    def __init__(self, app: App, collector: Collector, on_alarm: Callable[[], None] | None = None) -> None:
        """Work through `collector`'s drivers; `on_alarm` is called when an alarming event was stored."""
        self.app = app
        self.collector = collector
        ids = {serial: meter.id for serial, meter in app.meters.items()}
        self.clock = ClockService(app.store, app.config, ids, app.config.site.tz)
        self.meter_ids: Mapping[str, int] = ids
        self.on_alarm = on_alarm
        self.last_clock: dict[str, datetime] = {}
        self.last_journal: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()

    def restore(self) -> None:
        """Start counting ``check_every`` from the checks stored by earlier runs (blocking: call in a thread)."""
        by_id = {meter_id: serial for serial, meter_id in self.meter_ids.items()}
        for meter_id, check in load_clock(self.app.store, by_id).items():
            self.last_clock[by_id[meter_id]] = check.checked_at

    def driver_of(self, serial: str) -> tuple[PollDriver, MeterConfig]:
        """The driver and configuration of a polled meter; `NotFound` otherwise."""
        worker = self.collector.polled.get(serial)
        if worker is None:
            raise NotFound(f"meter {serial!r}: not polled by this collector")
        return worker.driver, self.collector.meters[serial]

    # --- after a poll ---------------------------------------------------------------------

    def on_poll(self, result: PollResult) -> None:
        """The collector's poll listener: schedule this meter's clock and journal work."""
        if result.values is None or result.serial in self._busy or result.serial not in self.collector.polled:
            return
        self._busy.add(result.serial)
        task = asyncio.get_running_loop().create_task(self._after_poll(result), name=f"amr-ops-{result.serial}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_poll(self, result: PollResult) -> None:
        serial = result.serial
        try:
            driver, meter = self.driver_of(serial)
            values = result.values
            now = datetime.now(UTC)
            policy = self.clock.policy(serial)
            if values is not None and values.meter_time is not None:
                reading = ClockReading(values.meter_time, values.polled_at)
                self.last_clock[serial] = now
                await self.clock.check(driver, meter, reading=reading)
            elif isinstance(driver, ClockKeeper) and due(self.last_clock.get(serial), policy.check_every, now):
                self.last_clock[serial] = now
                await self.clock.check(driver, meter)
            every = self.app.config.events.read_every
            if isinstance(driver, JournalReader) and due(self.last_journal.get(serial), every, now):
                self.last_journal[serial] = now
                await self.read_journal(serial)
        except AmrError as exc:
            log.warning("meter %s: clock or journal not done: %s", serial, exc)
        except Exception:
            log.exception("meter %s: clock or journal work failed", serial)
        finally:
            self._busy.discard(serial)

    # --- on demand (API, CLI) -------------------------------------------------------------

    async def sync_clock(self, serial: str, *, correct: bool = True, force: bool = True) -> ClockOutcome:
        """Check and (by default, whatever ``correct`` says in the policy) correct one meter's clock now."""
        driver, meter = self.driver_of(serial)
        self.last_clock[serial] = datetime.now(UTC)
        reading = None
        if not isinstance(driver, ClockKeeper):  # a protocol whose poll reports the clock: poll, store nothing
            outcome = await self.collector.polled[serial].read(meter)
            if outcome.values is None or outcome.values.meter_time is None:
                why = f"the meter was not read: {outcome.error}" if outcome.values is None else "no clock in its answer"
                return ClockOutcome(serial, "unread", message=why)
            reading = ClockReading(outcome.values.meter_time, outcome.values.polled_at)
        return await self.clock.check(driver, meter, reading=reading, force=force, correct=correct)

    async def read_journal(self, serial: str) -> tuple[list[MeterEvent], list[MeterEvent]]:
        """Read one meter's journals now: (every event read, those that were new)."""
        driver, meter = self.driver_of(serial)
        if not isinstance(driver, JournalReader):
            raise NotFound(f"meter {serial!r}: its protocol's driver reads no journal")
        events = await driver.read_journal(meter)
        alarms = self.app.config.events.alarm.enabled
        new = await asyncio.to_thread(
            save_events, self.app.store, self.meter_ids, events, datetime.now(UTC), alarms=alarms
        )
        if new and alarms and any(e.alarming for e in new) and self.on_alarm is not None:
            self.on_alarm()
        if new:
            log.info("meter %s: %d new event(s) of %d read", serial, len(new), len(events))
        return events, new

    # --- dispatchers' requests (the API in another process) -----------------------------------

    async def serve_requests(self, stop: asyncio.Event, every: float = 2.0) -> None:
        """Carry out dispatchers' clock requests for the meters this collector polls, until `stop`."""
        by_id = {meter_id: serial for serial, meter_id in self.meter_ids.items()}
        while not stop.is_set():
            try:
                pending = await asyncio.to_thread(clock_requests, self.app.store)
                for request in pending:
                    serial = by_id.get(request.meter_id)
                    if serial in self.collector.polled and not stop.is_set():
                        await self._serve(serial, request)
            except AmrError as exc:
                log.warning("clock requests not served: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    async def _serve(self, serial: str, request: ClockRequest) -> None:
        outcome = await self.sync_clock(serial)
        details = {**outcome.as_dict(), "requested_at": request.requested_at.isoformat()}

        def done() -> None:
            with translate_errors(), self.app.store.engine.begin() as conn:
                audit(conn, datetime.now(UTC), request.actor, "clock_correction_done", serial, request.reason, details)
            drop_clock_request(self.app.store, request)

        await asyncio.to_thread(done)

    async def close(self) -> None:
        """Wait for the work in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


__all__ = ["MeterOperations", "due"]
