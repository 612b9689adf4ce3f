"""The clock policy and its service: measure a meter's drift, correct it within the protocol's limits.

`plan` decides from the drift, the meter's `ClockPolicy` and the driver's `ClockLimits`:

* within ``threshold``: nothing (state ``ok``);
* beyond it, with ``correct`` off (and not asked for): ``drifting``;
* within the protocol's shift (Mercury: ±4 minutes, once a day): a shift by minus the drift;
  a meter already corrected today by us is not asked again before tomorrow (``drifting``);
* beyond that shift, with ``allow_set``: set the time (Mercury: at the admin level);
* otherwise, or when the driver cannot write the clock: ``uncorrectable``, the meter flagged.

`ClockService.check` carries the plan out through the driver, records every correction (and a
refusal, and a meter it cannot correct) as an event and keeps the check (table ``meter_clock``).
A correction is claimed in the store first (`claim_correction`: one conditional UPDATE), so two
processes never correct one meter twice: once a day where the protocol says so, else once a minute.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from amr.config import Config, MeterConfig
from amr.core.events import MeterEvent
from amr.drivers.base import PollDriver
from amr.drivers.clock import ClockKeeper, ClockLimits, ClockReading
from amr.errors import DriverError
from amr.operations.settings import ClockPolicy
from amr.store import Store
from amr.store.events import ClockCheck, claim_correction, load_clock, release_correction, save_clock, save_events

log = logging.getLogger("amr.clock")
RECENT = timedelta(minutes=1)  # a correction begun this recently is not begun again (protocols without a daily limit)
Action = Literal["none", "drifting", "shift", "set", "uncorrectable"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do about one drift, and why."""

    action: Action
    why: str = ""


def seconds(delta: timedelta) -> str:
    """A drift or shift for people: ``+38.2 s``."""
    return f"{delta.total_seconds():+.1f} s"


def plan(
    drift: timedelta,
    policy: ClockPolicy,
    limits: ClockLimits | None,
    *,
    force: bool = False,
    corrected_today: bool = False,
) -> Plan:
    """The action for `drift` under `policy` and the protocol's `limits` (None: it cannot write the clock)."""
    if abs(drift) <= policy.threshold:
        return Plan("none", f"drift {seconds(drift)} within the threshold {policy.threshold.total_seconds():g} s")
    if not (policy.correct or force):
        return Plan("drifting", "corrections are off for this meter ([clock] correct = false)")
    if limits is None:
        return Plan("uncorrectable", "the driver of this meter's protocol cannot write its clock")
    if limits.max_shift is None or abs(drift) <= limits.max_shift:
        if limits.once_a_day and corrected_today:
            return Plan("drifting", "corrected today already; the protocol allows one correction a day")
        return Plan("shift")
    beyond = f"drift {seconds(drift)} is beyond the protocol's correction of ±{limits.max_shift.total_seconds():g} s"
    if policy.allow_set and limits.can_set:
        return Plan("set", beyond)
    needs = f" ({limits.set_needs})" if limits.set_needs else ""
    return Plan("uncorrectable", f"{beyond}; set [clock] allow_set = true{needs} to set the time")


@dataclass(slots=True)
class ClockOutcome:
    """One clock check of one meter."""

    serial: str
    state: str  # ok | drifting | corrected | set | refused | uncorrectable | unread
    drift: timedelta | None = None
    meter_time: datetime | None = None
    message: str = ""
    events: list[MeterEvent] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "meter": self.serial,
            "state": self.state,
            "drift_s": None if self.drift is None else round(self.drift.total_seconds(), 3),
            "meter_time": None if self.meter_time is None else self.meter_time.isoformat(),
            "message": self.message,
            "events": [e.code for e in self.events],
        }


class ClockService:
    """Checks and corrects meters' clocks through their drivers; records checks and events."""

    def __init__(self, store: Store, config: Config, meter_ids: dict[str, int], tz: tzinfo = UTC) -> None:
        """`meter_ids`: store id per serial."""
        self.store = store
        self.config = config
        self.meter_ids = meter_ids
        self.tz = tz
        self.buses = {m.serial: m.bus for m in config.meters}

    def policy(self, serial: str) -> ClockPolicy:
        """The policy in force for meter `serial`."""
        return self.config.clock.policy(serial, self.buses.get(serial))

    def _corrected_today(self, serial: str, now: datetime) -> bool:
        meter_id = self.meter_ids.get(serial)
        if meter_id is None:
            return False
        last = load_clock(self.store, [meter_id]).get(meter_id)
        if last is None or last.corrected_at is None:
            return False
        return last.corrected_at.astimezone(self.tz).date() == now.astimezone(self.tz).date()

    async def check(
        self,
        driver: PollDriver,
        meter: MeterConfig,
        *,
        reading: ClockReading | None = None,
        force: bool = False,
        correct: bool = True,
    ) -> ClockOutcome:
        """Measure the drift (from `reading`, else by reading the clock) and act on it; recorded in the store.

        `force`: correct even where the policy's ``correct`` is off (a dispatcher's request);
        `correct`: False only measures and records.
        """
        outcome, corrected_at, shift = await self._act(driver, meter, reading, force, correct)
        return await asyncio.to_thread(self._record, outcome, corrected_at=corrected_at, correction=shift)

    async def _act(
        self, driver: PollDriver, meter: MeterConfig, reading: ClockReading | None, force: bool, correct: bool
    ) -> tuple[ClockOutcome, datetime | None, timedelta | None]:
        serial = meter.serial
        keeper = driver if isinstance(driver, ClockKeeper) else None
        if reading is None:
            if keeper is None:
                unread = ClockOutcome(serial, "unread", message="this protocol's driver cannot read the clock")
                return unread, None, None
            try:
                reading = await keeper.read_clock(meter)
            except DriverError as exc:
                return ClockOutcome(serial, "unread", message=f"the clock could not be read: {exc}"), None, None
        drift = reading.drift
        outcome = ClockOutcome(serial, "ok", drift, reading.meter_time)
        now = datetime.now(UTC)
        limits = keeper.clock_limits if keeper is not None else None
        decided = plan(
            drift, self.policy(serial), limits, force=force,
            corrected_today=limits is not None and limits.once_a_day
            and await asyncio.to_thread(self._corrected_today, serial, now),
        )
        outcome.message = decided.why
        if decided.action == "none" or not correct:
            outcome.state = "ok" if decided.action == "none" else "drifting"
            return outcome, None, None
        if decided.action == "drifting":
            outcome.state = "drifting"
            return outcome, None, None
        if decided.action == "uncorrectable" or keeper is None:
            outcome.state = "uncorrectable"
            outcome.events.append(MeterEvent(serial, now, "clock.uncorrectable", {"drift_s": drift.total_seconds()},
                                             "head-end", f"drift {seconds(drift)}"))
            return outcome, None, None
        shift = -drift
        meter_id = self.meter_ids.get(serial)
        claim: tuple[bool, datetime | None] = (True, None)
        if meter_id is not None:
            day_start = datetime.combine(now.astimezone(self.tz).date(), time(), self.tz).astimezone(UTC)
            daily = limits is not None and limits.once_a_day and decided.action == "shift"  # setting is not daily
            not_since = day_start if daily else now - RECENT
            claim = await asyncio.to_thread(claim_correction, self.store, meter_id, now, not_since)
        if not claim[0]:
            outcome.state = "drifting"
            outcome.message = "another correction of this meter began " + (
                "today; the protocol allows one a day" if daily else f"within the last {RECENT.total_seconds():g} s"
            )
            return outcome, None, None
        try:
            if decided.action == "shift":
                await keeper.shift_clock(meter, shift)
            else:
                await keeper.set_clock(meter, datetime.now(UTC), self.policy(serial).admin_password)
        except DriverError as exc:
            if meter_id is not None and exc.code != "mercury.clock_corrected":  # else: corrected today indeed
                await asyncio.to_thread(release_correction, self.store, meter_id, now, claim[1])
            outcome.state, outcome.message = "refused", f"the meter refused the correction: {exc}"
            code = exc.code
            outcome.events.append(MeterEvent(serial, now, "clock.refused", {"error": str(exc), "code": code,
                                             "drift_s": drift.total_seconds()}, "head-end", f"drift {seconds(drift)}"))
            return outcome, None, None
        done = "corrected" if decided.action == "shift" else "set"
        outcome.state = done
        outcome.message = f"{'shifted' if done == 'corrected' else 'set'} by {seconds(shift)}"
        raw = {"drift_s": drift.total_seconds(), "shift_s": shift.total_seconds(), "action": decided.action}
        outcome.events.append(
            MeterEvent(serial, now, f"clock.{done}", raw, "head-end", f"shift {seconds(shift)}")
        )
        return outcome, now, shift

    def _record(
        self, outcome: ClockOutcome, *, corrected_at: datetime | None = None, correction: timedelta | None = None
    ) -> ClockOutcome:
        meter_id = self.meter_ids.get(outcome.serial)
        if meter_id is None:
            return outcome
        now = datetime.now(UTC)
        if outcome.state in ("uncorrectable", "refused"):
            before = load_clock(self.store, [meter_id]).get(meter_id)
            if before is not None and (before.state, before.message) == (outcome.state, outcome.message):
                outcome.events = []  # flagged already: one event when it starts, not one a poll
        save_clock(
            self.store,
            ClockCheck(
                meter_id, now, outcome.state, outcome.meter_time,
                None if outcome.drift is None else round(outcome.drift.total_seconds() * 1000),
                outcome.message, corrected_at,
                None if correction is None else round(correction.total_seconds() * 1000),
            ),
        )
        if outcome.events:
            save_events(self.store, self.meter_ids, outcome.events, now, alarms=self.config.events.alarm.enabled)
        if outcome.state in ("corrected", "set", "refused", "uncorrectable"):
            log.info("meter %s clock: %s (%s)", outcome.serial, outcome.state, outcome.message)
        return outcome


__all__ = ["ClockOutcome", "ClockService", "Plan", "plan", "seconds"]
