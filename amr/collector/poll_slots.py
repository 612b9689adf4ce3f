"""A meter's slot: the grid time of its schedule a poll belongs to, so that a slot is polled once.

The slot of a moment is the last unjittered fire time at or before it (`PollTrigger`: the
interval grid or the cron, with the offset). A scheduled poll fired with jitter, or a poll made
late by a collector that took the meter's lease over, belongs to the same slot; `SlotBook`
remembers the last slot each meter was polled in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from amr.collector.schedule import PollTrigger

_SEARCH_LIMIT = timedelta(days=400)


def slot_start(trigger: PollTrigger, now: datetime) -> datetime | None:
    """The last fire time of `trigger` (without jitter) at or before `now`; None when there is none."""
    span = max(trigger.schedule.shortest_interval, timedelta(seconds=1))
    while span <= _SEARCH_LIMIT:
        found = trigger.next_unjittered(None, now - span)
        if found is not None and found <= now:
            while (following := trigger.next_unjittered(found, found)) is not None and following <= now:
                found = following
            return found
        span *= 2
    return None


class SlotBook:
    """The slot each meter was last polled in (by this collector, or by another as the store says)."""

    def __init__(self) -> None:
        """Nothing polled yet."""
        self._done: dict[str, datetime] = {}

    def claim(self, serial: str, slot: datetime) -> bool:
        """Mark `slot` of `serial` polled; False when it already was (then do not poll)."""
        if self._done.get(serial) == slot:
            return False
        self._done[serial] = slot
        return True

    def done(self, serial: str, slot: datetime) -> bool:
        """Whether `slot` of `serial` is already polled."""
        return self._done.get(serial) == slot
