"""A collector among others: polls only the units it leases, each meter once a slot, none lost at a takeover.

Bridges `LeaseKeeper` and `Collector` (``[collector] leases``, PostgreSQL only):

* a scheduled poll runs only while the meter's unit is held, and only once for its slot
  (`SlotBook`): a poll fired late or with jitter after a catch-up is not made twice; the lease
  is asked again when the poll gets its turn on the bus, so a poll that waited there while the
  lease was lost (and taken over) is not made;
* when a lease is taken that another collector held (it died, or gave it back), the meters of
  the unit whose current slot is not over its ``misfire_grace`` are looked up in the store
  (`polled_since`): those polled in this slot are left alone, the others are polled at once —
  what the dead collector did not get to is still polled in its slot;
* before a lease is given back its polls in flight finish and the writer flushes them, so the
  taker sees them in the store; a serial line's port is closed for the taker.

Readings a dead collector kept in its buffer (the store was away) are written when
`amr collect` starts again on that machine; every write is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from amr.collector.lease_units import LeaseUnit, lease_units
from amr.collector.leasing import LeaseKeeper
from amr.collector.poll_slots import SlotBook, slot_start
from amr.collector.schedule import PollTrigger
from amr.errors import StoreError
from amr.store.leases import LeaseTable, Taken, collector_id
from amr.store.polled import polled_since

if TYPE_CHECKING:
    from amr.collector.collector import Collector

log = logging.getLogger("amr.collector")


class SharedPolling:
    """The leases of one collector and the slot rule of its scheduled polls."""

    def __init__(self, collector: Collector, name: str | None = None) -> None:
        """Units from the collector's polled meters; no I/O yet."""
        self.collector = collector
        config = collector.config
        buses = {bus.name: bus for bus in config.buses}
        serial_line = {name: worker.serial_line for name, worker in collector.workers.items()}
        polled = [collector.meters[serial] for serial in collector.polled]
        self.units = lease_units(buses, polled, serial_line, config.collector.lease_group)
        self.unit_of = {serial: unit.key for unit in self.units for serial in unit.meters}
        self.id = collector_id(name or config.collector.name)
        table = LeaseTable(collector.app.store.engine, self.id, config.collector.lease_ttl)
        self.keeper = LeaseKeeper(table, self.units, config.collector.lease_ttl, self._taken, self._before_release)
        self.slots = SlotBook()
        self.triggers: Mapping[str, PollTrigger] = {}
        self._catch_ups: set[asyncio.Task[None]] = set()
        self.lookups = 0  # queries of the store for meters already polled in their slot
        self.skipped = 0  # scheduled polls not made: the unit is another's, or the slot was polled

    @classmethod
    def wanted(cls, collector: Collector) -> bool:
        """Whether `collector` shares its buses: ``leases = "auto"`` on PostgreSQL."""
        return collector.config.collector.leases == "auto" and collector.app.store.backend.dialect == "postgresql"

    async def start(self, triggers: Mapping[str, PollTrigger]) -> None:
        """Take this collector's first share (waiting for the database if it is away), then keep it."""
        self.triggers = triggers
        log.info("collector %s: sharing %d lease(s) with the other collectors", self.id, len(self.units))
        await self.keeper.start()

    async def stop(self) -> None:
        """Give every lease back; log what keeping them cost."""
        await self.keeper.stop()
        keeper = self.keeper
        log.info(
            "lease keeping: %d round(s), %d lease statement(s), %d slot lookup(s); a round took %.1f ms on average",
            keeper.rounds, keeper.table.statements, self.lookups,
            1000 * keeper.round_seconds / max(1, keeper.rounds),
        )

    def may_poll(self, serial: str, slot: datetime | None = None) -> bool:
        """Whether a scheduled poll of `serial` is made now: its unit is held and its slot (`slot`, the
        fire's, else the one of now) not yet polled."""
        if not self.keeper.holds(self.unit_of[serial]):
            self.skipped += 1
            return False
        if slot is None:
            slot = slot_start(self.triggers[serial], datetime.now(UTC))
        if slot is not None and not self.slots.claim(serial, slot):
            self.skipped += 1
            return False
        return True

    def allows(self, serial: str) -> Callable[[], bool]:
        """Asked when a poll of `serial` gets its turn on the bus: whether its lease is still held."""
        key = self.unit_of[serial]
        return lambda: self.keeper.holds(key)

    async def _taken(self, taken: list[Taken]) -> None:
        now = datetime.now(UTC)
        collector = self.collector
        due: dict[int, tuple[str, datetime]] = {}
        slots: dict[int, datetime | None] = {}  # by trigger: meters of one schedule share one
        for item in taken:
            if item.previous_expiry is None:
                continue  # never held before: its meters wait for their next slot, as at any start
            for serial in self.units_by_key[item.lease].meters:
                trigger = self.triggers[serial]
                if id(trigger) not in slots:
                    slots[id(trigger)] = slot_start(trigger, now)
                slot = slots[id(trigger)]
                grace = collector.schedules[serial].misfire_grace
                if slot is None or now - slot > grace or self.slots.done(serial, slot):
                    continue
                due[collector.app.meters[serial].id] = (serial, slot)
        if not due:
            return
        self.lookups += 1
        try:
            polled = await asyncio.to_thread(
                polled_since, collector.app.store.engine, {mid: slot for mid, (_, slot) in due.items()}
            )
        except StoreError as exc:
            log.warning("could not ask the store which meters were polled in this slot (%s); polling them", exc)
            polled = set()
        caught_up = [
            serial for meter_id, (serial, slot) in due.items()
            if self.slots.claim(serial, slot) and meter_id not in polled
        ]  # fmt: skip
        if caught_up:
            assert collector.scheduled is not None  # leases are kept for scheduled polls only
            task = asyncio.create_task(collector.scheduled.start_now(caught_up), name="amr-catch-up")
            self._catch_ups.add(task)
            task.add_done_callback(self._catch_ups.discard)
        log.info("took over %d meter(s) in their slot: %d already polled, %d polled now",
                 len(due), len(due) - len(caught_up), len(caught_up))

    @property
    def units_by_key(self) -> dict[str, LeaseUnit]:
        """The units by lease key."""
        return self.keeper.units

    async def _before_release(self, units: list[LeaseUnit]) -> None:
        collector = self.collector
        running = collector.running(serial for unit in units for serial in unit.meters)
        if running:
            await asyncio.wait(running)
        if collector.writer is not None:
            await collector.writer.flush()
        for unit in units:
            worker = collector.workers.get(unit.bus)
            if worker is not None and worker.serial_line:
                await worker.close()  # the port (or the converter's one TCP client) is the taker's now
