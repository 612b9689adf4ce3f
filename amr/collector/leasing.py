"""The lease keeper of one collector: heartbeats, renewals, a fair share, and hand-overs without a storm.

Every ``[collector] lease_ttl`` / 3 a round (one statement, `amr.store.leases`) records the
heartbeat, renews the leases still held and counts the live collectors. Then, at most one change:

* holding no more than any other live collector and fewer than the fair share (``ceil(leases /
  live collectors)``): take free or expired ones up to it, at once (a dead collector's leases
  are taken over in one round). Only the collector holding fewest takes, so a lease given
  back goes to it, not to one that would give it on again;
* at least two more than the collector holding the fewest: give some back (the last taken),
  after their polls in flight are finished and written; the one holding fewest takes them in
  its next round. Per round at most half the difference, no more than down to the fair share,
  and at most a tenth of all leases (one at least): a collector that comes back takes its share
  over a few rounds, a little from each of the others, not all at once. A lease given back is
  not taken again by the same collector for one TTL. A difference of one never moves a lease
  (hysteresis): shares settle and stay.

A lease is used only until ``renewal start + TTL`` on this machine's monotonic clock, which
is never later than the expiry the database gave it: once another may have it, this one has
stopped. While the database cannot be reached the collector keeps polling what it held (the
readings go to its buffer): losing readings is worse than a reading twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from amr.collector.lease_units import LeaseUnit
from amr.core.listing import first_few
from amr.errors import StoreError
from amr.store.leases import LeaseTable, RoundResult, Taken

log = logging.getLogger("amr.collector")

OnTaken = Callable[[list[Taken]], Awaitable[None]]
BeforeRelease = Callable[[list[LeaseUnit]], Awaitable[None]]


class LeaseKeeper:
    """Holds this collector's share of `units` through `table`; `holds(key)` says whether to poll now."""

    def __init__(
        self,
        table: LeaseTable,
        units: Sequence[LeaseUnit],
        ttl: timedelta,
        on_taken: OnTaken,
        before_release: BeforeRelease,
    ) -> None:
        """`on_taken` runs after leases are taken; `before_release` before one is given back."""
        self.table = table
        self.units = {unit.key: unit for unit in units}
        self.ttl = ttl.total_seconds()
        self.period = self.ttl / 3
        self.on_taken = on_taken
        self.before_release = before_release
        self.held: dict[str, float] = {}  # key → monotonic time until which this collector may use it
        self.order: list[str] = []  # held keys, in the order they were taken
        self.outage = False
        self.rounds = 0
        self.round_seconds = 0.0  # time spent waiting for the round statement, summed
        self._cooldown: dict[str, float] = {}  # key → monotonic time before which it is not taken again
        self._task: asyncio.Task[None] | None = None
        self._releasing: dict[str, asyncio.Task[None]] = {}  # keys being given back, by their hand-over task

    def holds(self, key: str) -> bool:
        """Whether this collector may poll the unit `key` now."""
        until = self.held.get(key)
        return until is not None and (self.outage or until > time.monotonic())

    async def start(self) -> None:
        """Create the lease rows, make the first round (so the first polls know their share), start the loop."""
        await asyncio.to_thread(
            self.table.ensure, {u.key: (u.bus, len(u.meters)) for u in self.units.values()}
        )
        await self.step()
        self._task = asyncio.create_task(self._loop(), name="amr-leases")

    async def stop(self) -> None:
        """Stop the rounds and give every lease back at once (the others take them in their next round)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.handed_over()
        keys, self.held, self.order = list(self.held), {}, []
        try:
            await asyncio.to_thread(self.table.release, keys, stopping=True)
        except StoreError as exc:
            log.warning("leases not given back (%s); they expire in %g s", exc, self.ttl)

    async def _loop(self) -> None:
        while True:
            due = time.monotonic() + self.period
            await asyncio.sleep(self.period)
            late = time.monotonic() - due
            if late > self.period:
                log.warning(
                    "lease round %.1f s late (the event loop is busy); leases expire %g s after a renewal: "
                    "raise [collector] lease_ttl if this repeats", late, self.ttl,
                )
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the rounds: the leases would expire
                log.exception("lease round failed; trying again")

    async def step(self) -> None:
        """One round: heartbeat and renewals, then at most one change of share."""
        started = time.monotonic()
        try:
            found = await asyncio.to_thread(self.table.round, list(self.units))
        except StoreError as exc:
            if not self.outage:
                log.warning("leases not renewed (%s); polling the %d held on, into the buffer", exc, len(self.held))
            self.outage = True
            return
        if self.outage:
            log.info("leases renewed again")
        self.outage = False
        self.rounds += 1
        self.round_seconds += time.monotonic() - started
        self._renewed(found, started)
        await self._rebalance(found, started)

    def _renewed(self, found: RoundResult, started: float) -> None:
        for key in list(self.held):
            if key in found.renewed:
                self.held[key] = started + self.ttl
            else:
                log.warning("lease %s was taken by another collector; no longer polling it", key)
                self._drop(key)
        for key in found.renewed - set(self.held) - set(self._releasing):  # ours in the database, unknown here
            self._keep(key, started)

    async def _rebalance(self, found: RoundResult, started: float) -> None:
        live = max(1, found.live)
        poorest = found.fewest is None or len(self.held) <= found.fewest
        share = math.ceil(len(self.units) / live) if poorest else 0
        now = time.monotonic()
        if len(self.held) < share:
            self._cooldown = {k: t for k, t in self._cooldown.items() if t > now}
            busy = self.held.keys() | self._cooldown.keys() | self._releasing.keys()
            free = [k for k in self.units if k not in busy]
            taken = await asyncio.to_thread(self.table.acquire, free, share - len(self.held))
            if taken:
                for item in taken:
                    self._keep(item.lease, started)
                log.info(
                    "took %d lease(s) (%s); holding %d of %d, %d collector(s) alive",
                    len(taken), first_few([t.lease for t in taken]), len(self.held), len(self.units), found.live,
                )
                await self.on_taken(taken)
        elif found.fewest is not None and len(self.held) >= found.fewest + 2 and self.order and not self._releasing:
            fair = math.ceil(len(self.units) / live)
            count = min((len(self.held) - found.fewest) // 2, len(self.held) - fair, math.ceil(len(self.units) / 10))
            keys = self.order[-max(1, count):]
            for key in keys:
                self._drop(key)  # no poll of it starts from here on
                self._cooldown[key] = now + self.ttl
            # the hand-over waits for polls in flight: on a task of its own, so the rounds go on renewing
            task = asyncio.create_task(self._give_back(keys), name="amr-lease-handover")
            for key in keys:
                self._releasing[key] = task

    async def handed_over(self) -> None:
        """Wait until the leases being given back are given back."""
        await asyncio.gather(*set(self._releasing.values()), return_exceptions=True)

    async def _give_back(self, keys: list[str]) -> None:
        try:
            await self.before_release([self.units[key] for key in keys])
            await asyncio.to_thread(self.table.release, keys)
            log.info("gave %d lease(s) back for another collector (%s); holding %d",
                     len(keys), ", ".join(keys), len(self.held))
        except StoreError as exc:
            log.warning("leases %s not given back (%s); they expire in %g s", ", ".join(keys), exc, self.ttl)
        except Exception:  # a bug: the leases expire by themselves
            log.exception("leases %s not given back; they expire in %g s", ", ".join(keys), self.ttl)
        finally:
            for key in keys:
                self._releasing.pop(key, None)

    def _keep(self, key: str, started: float) -> None:
        self.held[key] = started + self.ttl
        if key not in self.order:
            self.order.append(key)

    def _drop(self, key: str) -> None:
        self.held.pop(key, None)
        if key in self.order:
            self.order.remove(key)
