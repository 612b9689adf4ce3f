"""Meter operations the collector carries out beside polls: relay commands and power-quality reads.

**Relay commands** (`amr.store.relay_commands`): every ``[relay] check_every`` the collector claims
the due commands of its meters whose driver is a `RelaySwitch` and runs each on the meter's bus
(one of the bus's slots, after any poll of that meter in flight): one session that reads the
switch, acts unless it is there already, and reads it back. The result is stored and audited; a
meter that does not answer (a transient error) is tried again after ``[relay] retry`` until the
command's deadline, when it expires; a refusal (access denied, no such object) fails it at once.
Exactly once: a claim is a lease held by this collector alone (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), and since each session reads the switch before acting, an attempt whose answer was
lost, or a collector stopped in the middle, never leads to a second action.

**Power quality** (`amr.store.quality`): every ``[quality] every`` each meter whose driver is a
`QualityReader` is asked for its instantaneous values on its bus; the sample is stored apart from
readings, and each quantity outside ``[quality] limits`` is stored as an event and logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar, cast

from amr.collector.bus import BusWorker, describe
from amr.collector.retry import is_transient
from amr.config import MeterConfig
from amr.drivers.quality import QualityReader, QualitySample
from amr.drivers.relay import RelayAction, RelayState, RelaySwitch
from amr.errors import AmrError, DriverError, ReadTimeout
from amr.store import quality as quality_store
from amr.store import relay_commands as commands
from amr.store.quality import Limit

if TYPE_CHECKING:
    from amr.collector.collector import Collector

log = logging.getLogger("amr.collector")
T = TypeVar("T")


def worker_name() -> str:
    """This collector's name in claims and audit records: host, process and a random part."""
    return f"collector:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class _Target:
    meter: MeterConfig
    meter_id: int
    worker: BusWorker


class Operations:
    """The relay and quality loops of one collector (started and stopped with it)."""

    def __init__(self, collector: Collector, *, clock: Callable[[], datetime] | None = None) -> None:
        """Find the meters whose drivers can switch a relay or read instantaneous values."""
        self.collector = collector
        self.config = collector.config
        self.store = collector.app.store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.name = worker_name()
        self.relays: dict[str, _Target] = {}
        self._readers: list[str] = []  # meters on buses whose driver reads instantaneous values
        can: dict[str, tuple[bool, bool]] = {}  # bus → (relay, quality) of its driver, asked once a bus
        for serial, worker in collector.polled.items():
            kinds = can.get(worker.bus.name)
            if kinds is None:
                driver = worker.driver
                kinds = can[worker.bus.name] = (isinstance(driver, RelaySwitch), isinstance(driver, QualityReader))
            relay, quality = kinds
            if quality:
                self._readers.append(serial)
            if relay and (target := self._target(serial)) is not None:
                self.relays[serial] = target
        self.by_id = {t.meter_id: t for t in self.relays.values()}
        self.limits = {k: Limit(v.min, v.max) for k, v in self.config.quality.limits.items()}
        for target in self.relays.values():
            warning = lease_check(self.config.relay.lease, target.worker.policy(target.meter).limit)
            if warning is not None:
                log.warning("meter %s: %s", target.meter.serial, warning)
                break
        self._running: set[asyncio.Task[commands.RelayCommand | None]] = set()

    @functools.cached_property
    def qualities(self) -> dict[str, _Target]:
        """The meters that have instantaneous values their driver reads, by serial (found when first asked)."""
        targets = (self._target(serial) for serial in self._readers)
        return {
            target.meter.serial: target for target in targets
            if target is not None and cast(QualityReader, target.worker.driver).has_quality(target.meter)
        }  # fmt: skip

    def _target(self, serial: str) -> _Target | None:
        known = self.collector.app.meters.get(serial)
        if known is None:
            return None
        return _Target(self.collector.meters[serial], known.id, self.collector.polled[serial])

    def start(self) -> list[asyncio.Task[None]]:
        """The loops to run until the collector stops."""
        tasks = []
        if self.relays:
            tasks.append(asyncio.create_task(self._relay_loop(), name="amr-relay"))
        if self.config.quality.every is not None and self.qualities:
            tasks.append(asyncio.create_task(self._quality_loop(), name="amr-quality"))
        return tasks

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds` or until the collector stops; True when it stops."""
        try:
            await asyncio.wait_for(self.collector.stopping.wait(), seconds)
            return True
        except TimeoutError:
            return False

    # --- relay ----------------------------------------------------------------------

    async def _relay_loop(self) -> None:
        every = self.config.relay.check_every.total_seconds()
        try:
            while not self.collector.stopping.is_set():
                await self.relay_turn()
                if await self._pause(every):
                    break
        finally:
            if self._running:  # commands under way end with their attempt (each bounded by its limit);
                await asyncio.wait(set(self._running))  # a cancelled wait leaves them running

    async def relay_turn(self) -> list[commands.RelayCommand]:
        """Claim the due commands of this collector's meters and start each; the claimed commands."""
        try:
            if not await asyncio.to_thread(commands.anything_due, self.store, list(self.by_id), self.clock()):
                return []  # the usual case: one read, no write transaction
            claimed = await asyncio.to_thread(
                commands.claim, self.store, list(self.by_id), self.name, self.clock(), self.config.relay.lease
            )
        except AmrError as exc:
            log.warning("relay commands not claimed: %s", describe(exc))
            return []
        for command in claimed:
            task = asyncio.create_task(self.execute(command), name=f"amr-relay-{command.id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return claimed

    async def settle(self) -> None:
        """Wait for the commands under way to end."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def execute(self, command: commands.RelayCommand) -> commands.RelayCommand | None:
        """One attempt at `command` on its meter's bus; its stored state afterwards."""
        target = self.by_id[command.meter_id]
        action: RelayAction = command.action  # type: ignore[assignment]  # checked by the API
        outcome = await self._attempt(target, action)
        retry_at = self.clock() + self.config.relay.retry if outcome.kind == "retry" else None
        try:
            stored = await asyncio.to_thread(commands.finish, self.store, command, self.name, outcome, self.clock(),
                                             retry_at)
        except AmrError as exc:  # the lease ends and the next claim reads the switch before acting
            log.warning("relay command %d: outcome not stored: %s", command.id, describe(exc))
            return None
        if stored is None:
            log.warning("relay command %d: the claim was lost before its outcome was stored", command.id)
        elif stored.status in commands.FINAL:
            log.info("relay command %d (%s meter %s): %s%s", command.id, command.action, command.serial,
                     stored.status, f", {stored.state}" if stored.state else f": {stored.error}")
        return stored

    async def _attempt(self, target: _Target, action: RelayAction) -> commands.Outcome:
        driver = target.worker.driver
        assert isinstance(driver, RelaySwitch)
        try:
            state: RelayState = await self._on_bus(target, lambda: driver.relay(target.meter, action))
        except DriverError as exc:
            error = self.collector.health.redact(target.meter.serial, describe(exc))
            code = exc.code or type(exc).__name__
            if is_transient(exc):
                return commands.Outcome("retry", error=error, error_code=code)
            return commands.Outcome("failed", error=error, error_code=code)
        except AmrError as exc:
            return commands.Outcome("failed", error=describe(exc), error_code=type(exc).__name__)
        return commands.Outcome("done", state.state, state.supplied, state.acted)

    async def _on_bus(self, target: _Target, work: Callable[[], Awaitable[T]]) -> T:
        """`work` holding one of the bus's slots, after the meter's poll in flight; bounded by the read limit."""
        running = self.collector._inflight.get(target.meter.serial)
        if running is not None:
            await asyncio.wait([running])
        policy = target.worker.policy(target.meter)
        async with target.worker.slots.hold():
            try:
                async with asyncio.timeout(policy.limit):
                    return await work()
            except TimeoutError:
                raise ReadTimeout(f"meter {target.meter.serial}: no result within {policy.limit:g} s") from None

    # --- power quality -------------------------------------------------------------

    async def _quality_loop(self) -> None:
        every = self.config.quality.every
        assert every is not None
        while not self.collector.stopping.is_set():
            await self.quality_turn()
            if await self._pause(every.total_seconds()):
                break

    async def quality_turn(self) -> dict[str, list[quality_store.QualityEvent]]:
        """Read and store every quality meter's values once; the events raised, by serial."""
        found = await asyncio.gather(*(self.read_quality(serial) for serial in self.qualities))
        return {serial: events for serial, events in zip(self.qualities, found, strict=True) if events}

    async def read_quality(self, serial: str) -> list[quality_store.QualityEvent]:
        """One meter's instantaneous values, stored; the events they raised."""
        target = self.qualities[serial]
        driver = target.worker.driver
        assert isinstance(driver, QualityReader)
        try:
            sample: QualitySample = await self._on_bus(target, lambda: driver.read_quality(target.meter))
        except AmrError as exc:
            log.info("meter %s: instantaneous values not read: %s", serial,
                     self.collector.health.redact(serial, describe(exc)))
            return []
        try:
            events = await asyncio.to_thread(quality_store.save_sample, self.store, target.meter_id, sample,
                                             self.clock(), self.limits)
        except AmrError as exc:
            log.warning("meter %s: instantaneous values not stored: %s", serial, describe(exc))
            return []
        for event in events:
            log.warning("meter %s: %s %g %s the limit %g at %s", serial, event.quantity, event.value,
                        event.kind, event.threshold, event.ts.isoformat())
        return events


def lease_check(lease: timedelta, limit: float) -> str | None:
    """A warning when a relay command's lease is not longer than one attempt may take."""
    if lease.total_seconds() <= limit:
        return (f"[relay] lease {lease.total_seconds():g} s is not longer than one attempt may take "
                f"({limit:g} s): a command still running could be claimed by another collector")
    return None
