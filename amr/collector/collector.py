"""The collector: schedules polls, runs bus workers and push drivers, hands every reading to the writer.

    collector = Collector(app)              # App.open(config): store, meters with ids, ingestor
    await collector.start()                 # writer, buses, push drivers, scheduler
    result = await collector.poll_now("01100017")
    await collector.stop()                  # graceful: see `stop`

Every meter with a ``bus`` is collected: meters on polled buses by schedule (APScheduler 3, one
job per distinct schedule that starts its meters' polls, each after its own jitter:
`amr.collector.scheduled`), meters on push buses as their messages come. A meter is never
polled twice at once: a poll requested (`poll_now`) while one is running joins it and gets its
result; a scheduled one is left out of its slot. On PostgreSQL (``[collector] leases = "auto"``)
scheduled polls are shared with the other collectors of the database through leases
(`SharedPolling`): only the meters of held leases are polled, each once a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from amr.app import App
from amr.collector.buffer import ReadingBuffer
from amr.collector.bus import BusWorker, ReadOutcome, Stopping, describe
from amr.collector.health import HealthBook
from amr.collector.operations import Operations
from amr.collector.push import PushRunner
from amr.collector.result import PollResult
from amr.collector.schedule import check_schedule, schedule_for
from amr.collector.scheduled import START_WAVE, ScheduledPolls
from amr.collector.shared import SharedPolling
from amr.collector.writer import Writer
from amr.config import BusConfig, Config, MeterConfig, ScheduleConfig
from amr.core.domain import Source
from amr.core.gc_policy import tune_gc
from amr.core.listing import first_few
from amr.drivers import is_push, poll_driver, push_driver
from amr.drivers.base import MeterValues, PushDriver, Sink
from amr.drivers.normalise import normalise
from amr.errors import DriverError, NotFound, StoreError
from amr.operations.alarms import AlarmSender
from amr.operations.runtime import MeterOperations
from amr.store.health import load_health

log = logging.getLogger("amr.collector")
PushFactory = Callable[[BusConfig, Sequence[MeterConfig], tzinfo], PushDriver]


def buffer_path(config: Config) -> Path:
    """``[collector] buffer`` resolved against the configuration file's directory."""
    path = Path(config.collector.buffer)
    if not path.is_absolute():
        base = config.source_path.parent if config.source_path is not None else Path.cwd()
        path = base / path
    return path


class Collector:
    """Polls and receives every field meter of one configuration into its store."""

    def __init__(self, app: App, *, push_factory: PushFactory = push_driver) -> None:
        """Build drivers and schedules from `app.config`; `ConfigError` names what is wrong. No I/O yet."""
        self.app = app
        config = self.config = app.config
        self.tz = config.site.tz
        self.stopping = asyncio.Event()
        self.on_poll: list[Callable[[PollResult], None]] = []  # called after every finished poll
        buses = {bus.name: bus for bus in config.buses}
        self.meters: dict[str, MeterConfig] = {m.serial: m for m in config.meters if m.bus is not None}
        self.workers: dict[str, BusWorker] = {}
        self.polled: dict[str, BusWorker] = {}
        self.schedules: dict[str, ScheduleConfig] = {}
        push_meters: dict[str, list[MeterConfig]] = {}
        checked: set[tuple[int, timedelta]] = set()  # (schedule, timeout) pairs found sound
        for meter in self.meters.values():
            bus = buses[meter.bus or ""]
            if is_push(bus):
                push_meters.setdefault(bus.name, []).append(meter)
                continue
            if bus.name not in self.workers:
                driver = poll_driver(bus, self.tz)
                self.workers[bus.name] = BusWorker(bus, driver, self.stopping, config.collector.read_limit)
            self.polled[meter.serial] = self.workers[bus.name]
            schedule = schedule_for(meter, bus, config.collector.default_schedule)
            timeout = meter.timeout or bus.timeout
            if (id(schedule), timeout) not in checked:  # most meters share their bus's or the default
                check_schedule(schedule, timeout, f"meter {meter.serial} on bus {bus.name}")
                checked.add((id(schedule), timeout))
            self.schedules[meter.serial] = schedule
        self.pushers = [
            PushRunner(buses[name], driver, self._sink(buses[name], driver))
            for name, meters in push_meters.items()
            for driver in [push_factory(buses[name], meters, self.tz)]
        ]

        def secrets(serial: str) -> list[str]:  # asked once per meter, when a message of it is first redacted
            meter = self.meters.get(serial)
            return [] if meter is None else [*meter.settings.secrets(), *buses[meter.bus or ""].settings.secrets()]

        ids = {serial: app.meters[serial].id for serial in self.meters if serial in app.meters}
        self.health = HealthBook(ids, config.collector.offline_after, secrets)
        self.buffer_path = buffer_path(config)
        self.buffer: ReadingBuffer | None = None
        self.writer: Writer | None = None
        self.scheduled: ScheduledPolls | None = None  # the schedules' jobs, once started
        self.sharing: SharedPolling | None = None  # the leases, when collectors share the buses
        self._inflight: dict[str, asyncio.Task[PollResult]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = self._stopped = False
        self.relay_quality: Operations | None = None  # relay commands and power quality
        self.alarms = AlarmSender(app.store, {m.id: s for s, m in app.meters.items()}, config.events.alarm)
        self.operations = MeterOperations(app, self, self.alarms.wake.set)  # clock and journals after polls
        self.on_poll.append(self.operations.on_poll)
        from amr.collector.poll_derivation import PollDerivation

        self.derivation = PollDerivation(self)  # intervals of meters without profiles, after their polls
        self.on_poll.append(self.derivation.on_poll)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, *, schedule: bool = True, push: bool = True) -> None:
        """Open the buffer and start the writer, open the buses, start push drivers and the scheduler."""
        if self._started:
            return
        self._started = True
        config = self.config
        cfg = config.collector
        self.buffer = await asyncio.to_thread(ReadingBuffer, self.buffer_path)
        try:
            self.health.restore(await asyncio.to_thread(load_health, self.app.store, self.health_ids()))
        except StoreError as exc:
            log.warning("meter health not loaded (%s); counting from zero", exc)
        self.writer = Writer(
            self.app.ingestor, self.buffer, self.health,
            interval=cfg.write_interval.total_seconds(), batch=cfg.write_batch,
            retry=cfg.store_retry.total_seconds(), retry_max=cfg.store_retry_max.total_seconds(),
        )
        self.writer.start()
        with contextlib.suppress(StoreError):
            await asyncio.to_thread(self.operations.restore)
        if config.events.alarm.enabled:
            self._tasks.append(asyncio.create_task(self.alarms.run(self.stopping), name="amr-alarms"))
        if schedule:
            requests = self.operations.serve_requests(self.stopping)
            self._tasks.append(asyncio.create_task(requests, name="amr-clock-requests"))
        if schedule and self.polled and SharedPolling.wanted(self):
            self.sharing = SharedPolling(self)  # buses are opened by their first poll, once leased
        else:
            await asyncio.gather(*(worker.open() for worker in self.workers.values()))
        tune_gc()
        if push:
            self._tasks += [asyncio.create_task(p.run(), name=f"amr-push-{p.bus.name}") for p in self.pushers]
        if schedule:  # relay commands and power quality (`amr.collector.operations`)
            self.relay_quality = Operations(self)
            self._tasks += self.relay_quality.start()
        if schedule and self.polled:
            self.scheduled = ScheduledPolls(self)
            if self.sharing is not None:
                await self.sharing.start(self.scheduled.triggers())
            self.scheduled.start()
            self._warn_tight_schedules(self.scheduled)
            self._start_backfill()
        if schedule and self.config.intervals.estimate_every is not None:  # `amr.collector.interval_upkeep`
            from amr.collector.interval_upkeep import IntervalUpkeep

            self._tasks.append(asyncio.create_task(IntervalUpkeep(self).run(), name="amr-interval-upkeep"))
        log.info(
            "collecting %d polled meter(s) on %d bus(es) and %d push bus(es); buffer %s",
            len(self.polled), len(self.workers), len(self.pushers), self.buffer_path,
        )

    def _start_backfill(self) -> None:
        """Back-fill profiles in the buses' background turns (`amr.collector.backfill_runner`)."""
        from amr.collector.backfill_runner import BackfillRunner

        if self.config.backfill.enabled:
            runner = BackfillRunner(self)
            if runner.meters:
                # A chunk holds a worker thread for its whole read: give every bus one for polls and one
                # for back-fill, so chunks never keep another bus's poll waiting for a thread (asyncio's
                # default pool has CPUs + 4).
                from concurrent.futures import ThreadPoolExecutor

                threads = 2 * len(self.workers) + 4
                asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads, "amr-collector"))
                self._tasks.append(asyncio.create_task(runner.run(), name="amr-backfill"))

    def _warn_tight_schedules(self, scheduled: ScheduledPolls) -> None:
        """Warn of meters a silent poll of which outlasts their poll interval: once per bus, timeout,
        retries and schedule, naming the first few meters."""
        for group in scheduled.groups:
            interval = group.schedule.shortest_interval.total_seconds()
            alike: dict[tuple[str, timedelta | None, int | None], list[str]] = {}
            for serial in group.serials:
                meter = self.meters[serial]
                alike.setdefault((meter.bus or "", meter.timeout, meter.retries), []).append(serial)
            for (bus, *_), serials in alike.items():
                worst = self.workers[bus].policy(self.meters[serials[0]]).worst_case()
                if worst >= interval:
                    log.warning(
                        "meter(s) %s on bus %s: a poll of a silent meter takes up to %g s (timeout × attempts + "
                        "backoff), not less than their poll interval %g s; while one does not answer, some of its "
                        "polls are skipped", first_few(serials), bus, worst, interval,
                    )  # fmt: skip

    def health_ids(self) -> list[int]:
        """Store ids of the collected meters."""
        return self.health.ids()

    async def stop(self) -> int:
        """Stop gracefully: no new polls, push drivers stopped, polls on the bus finished (each
        bounded by its timeout), the writer flushed and the buffer tried once, buses closed.
        Returns the readings left in the buffer."""
        if self._stopped or not self._started:
            return 0
        self._stopped = True
        self.stopping.set()
        if self.scheduled is not None:
            self.scheduled.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)
        await self.operations.close()
        await self.derivation.close()
        left = await self.writer.close() if self.writer is not None else 0
        if self.sharing is not None:
            await self.sharing.stop()
        await asyncio.gather(*(worker.close() for worker in self.workers.values()))
        if self.buffer is not None:
            self.buffer.close()
        if left:
            log.warning("%d reading(s) stay in the buffer %s for the next run", left, self.buffer_path)
        log.info("collector stopped")
        return left

    async def run(self, stop: asyncio.Event) -> int:
        """Start, collect until `stop` is set, stop; the readings left in the buffer."""
        await self.start()
        try:
            await stop.wait()
        finally:
            left = await self.stop()
        return left

    # --- polls ----------------------------------------------------------------------

    async def poll_now(self, serial: str) -> PollResult:
        """Poll one meter now and return the result; joins the poll already running for it, if any."""
        return await asyncio.shield(self.poll_task(serial))

    async def poll_all(self) -> list[PollResult]:
        """Poll every polled meter once (serial lines one meter at a time, buses at once); results in
        config order. Meters whose last poll failed start first: a dead meter's timeouts then run
        while the others are read instead of after them."""
        if not self.polled:
            return []
        tasks: dict[str, asyncio.Task[PollResult]] = {}
        for serial in sorted(self.polled, key=self.failing_first):
            tasks[serial] = self.poll_task(serial)
            if len(tasks) % START_WAVE == 0:
                # let the loop run the polls started so far: one loop turn starting thousands of polls
                # would hold back every timer (timeouts fire late) and every answer meanwhile
                await asyncio.sleep(0)
        await asyncio.wait(tasks.values())  # like `shield`: cancelling the sweep leaves the polls running
        return [tasks[serial].result() for serial in self.polled]

    def failing_first(self, serial: str) -> int:
        """A sort key: 0 for a meter whose last poll failed, else 1."""
        return 0 if self.health.failing(serial) else 1

    def poll_task(self, serial: str) -> asyncio.Task[PollResult]:
        """The running poll of `serial`, started now if there is none."""
        if serial not in self.polled:
            known = "a push meter: it reports by itself" if serial in self.meters else "not a collected meter"
            raise NotFound(f"meter {serial!r}: {known}")
        if self.writer is None:
            raise Stopping("the collector is not started")
        task = self._inflight.get(serial)
        if task is None:
            if self.stopping.is_set():
                raise Stopping("the collector is stopping")
            task = asyncio.create_task(self._poll(self.meters[serial]), name=f"amr-poll-{serial}")
            self._inflight[serial] = task
            task.add_done_callback(lambda done: self._forget(serial, done))
        return task

    def busy(self) -> set[str]:
        """Serials of the meters being polled right now."""
        return set(self._inflight)

    def is_polling(self, serial: str) -> bool:
        """Whether `serial` is being polled right now."""
        return serial in self._inflight

    def running(self, serials: Iterable[str]) -> list[asyncio.Task[PollResult]]:
        """The polls in flight of `serials`."""
        return [task for serial in serials if (task := self._inflight.get(serial)) is not None]

    def _forget(self, serial: str, task: asyncio.Task[PollResult]) -> None:
        if self._inflight.get(serial) is task:
            del self._inflight[serial]

    async def _poll(self, meter: MeterConfig) -> PollResult:
        worker = self.polled[meter.serial]
        started = datetime.now(UTC)
        allowed = self.sharing.allows(meter.serial) if self.sharing is not None else None
        outcome: ReadOutcome = await worker.read(meter, allowed)
        result = PollResult(meter.serial, worker.bus.name, started, datetime.now(UTC), outcome.attempts)
        assert self.writer is not None
        if outcome.values is not None:
            result.values = outcome.values
            self.health.success(meter.serial, result.finished_at, outcome.values.errors, worker.bus.name)
            source = Source(worker.driver.source)
            result.readings = normalise(outcome.values, self.app.meters.get(meter.serial), source)
            try:
                last = len(self._inflight) <= 1  # this poll only: no reason to wait for a fuller batch
                result.delivery = await self.writer.submit(result.readings, last=last)
            except Exception as exc:
                result.store_error = describe(exc)
        elif isinstance(outcome.error, Stopping) and outcome.attempts == 0:
            result.skipped, result.error, result.error_kind = True, str(outcome.error), "Stopping"
        else:
            error = outcome.error or RuntimeError("no values and no error")
            result.error = self.health.redact(meter.serial, describe(error))
            result.error_kind, result.exception = type(error).__name__, error
            result.error_code = error.code if isinstance(error, DriverError) else None
            self.health.failure(meter.serial, result.finished_at, result.error, worker.bus.name)
            self.writer.nudge()
        result.status = self.health.get(meter.serial).status if meter.serial in self.health else None
        for listener in self.on_poll:
            listener(result)
        return result

    # --- push -----------------------------------------------------------------------

    async def _store_profile(self, values: MeterValues) -> None:
        """Write a message's interval values (primary side) before the message is acknowledged; a store
        error fails the delivery, so the broker keeps the message for the next connection."""
        from amr.drivers.profiles import to_intervals

        intervals = to_intervals(values.serial, values.profile, self.app.meters.get(values.serial), values.polled_at)
        await asyncio.to_thread(self.app.store.write_intervals, intervals, check=self.app.interval_rules(),
                                now=values.polled_at)

    def _sink(self, bus: BusConfig, driver: PushDriver) -> Sink:
        source = Source(driver.source)

        async def sink(values: MeterValues) -> None:
            readings = normalise(values, self.app.meters.get(values.serial), source)
            if values.profile:  # a gateway's interval values (`amr.drivers.mqtt.intervals`)
                await self._store_profile(values)
            if values.profile and not values.tariffs:
                self.health.success(values.serial, values.polled_at, values.errors, bus.name)
                return
            if any(v is not None for r in readings for v in r.values.values()):
                self.health.success(values.serial, values.polled_at, values.errors, bus.name)
            else:
                why = "; ".join(f"{k}: {v}" for k, v in values.errors.items()) or "no values in the message"
                self.health.failure(values.serial, values.polled_at, why, bus.name)
            assert self.writer is not None
            await self.writer.submit(readings)  # stored or buffered durably before the driver acknowledges

        return sink

