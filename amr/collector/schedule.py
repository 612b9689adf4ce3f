"""When each meter is polled: its schedule as an APScheduler 3 trigger, and the fire times it implies.

A meter's schedule is ``meter.schedule``, else its bus's ``schedule``, else ``[collector]
default_schedule``. Both kinds are laid on a grid and then shifted by ``offset``:

- ``every``: the grid is the site's local midnight (of the day the trigger is built, or of
  the day `fire_times` starts) plus whole intervals; ``every = "30m"`` fires at :00 and :30.
- ``cron``: five crontab fields (minute hour day month weekday) in the site's time zone,
  read by ``CronTrigger.from_crontab``. The weekday field is standard crontab (0 and 7 are
  Sunday, 1 Monday; names allowed): it is translated to names, because APScheduler 3 counts
  0 as Monday. Restricting both day and weekday is refused (crontab ORs them, APScheduler
  ANDs them).

``cron = "*/30 * * * *"`` with ``offset = "2m"`` fires at :02 and :32. The trigger fires on
the grid; ``jitter`` delays each meter's poll in each slot by its own random part of it
(`PollTrigger.delay`), drawn afresh every slot and never carried over (so it does not drift),
and is shorter than the interval.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from amr.config import BusConfig, MeterConfig, ScheduleConfig
from amr.errors import ConfigError

WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 = Sunday
_ONE_US = timedelta(microseconds=1)


def schedule_for(meter: MeterConfig, bus: BusConfig | None, default: ScheduleConfig) -> ScheduleConfig:
    """The schedule that applies to `meter`: its own, its bus's, or the collector's default."""
    return meter.schedule or (bus.schedule if bus is not None else None) or default


def check_schedule(schedule: ScheduleConfig, timeout: timedelta, where: str) -> None:
    """Refuse a schedule whose polls would overlap their own timeout or whose jitter reaches the next poll."""
    try:
        schedule.check(timeout, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _digits(text: str) -> bool:
    """Only ASCII digits 0-9 (`str.isdigit` also takes other scripts' digits, which `int` reads)."""
    return text.isascii() and text.isdigit()


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0/7 = Sunday, names, ranges, steps) as APScheduler day names."""
    names = {name: index for index, name in enumerate(WEEKDAY_NAMES)}

    def day(text: str) -> int:
        text = text.strip().lower()
        if _digits(text) and 0 <= int(text) <= 7:
            return int(text) % 7
        if text[:3] in names and len(text) >= 3:
            return names[text[:3]]
        raise ConfigError(f"cron weekday {field!r}: {text!r} is not 0..7 or a day name such as mon")

    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if _digits(step_text) and int(step_text) > 0 else None
        if step_text and step is None:
            raise ConfigError(f"cron weekday {field!r}: step {step_text!r} is not a positive number")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = day(low), day(high)
            if high.strip() == "7":
                last = 7  # 5-7 is Friday to Sunday
        else:
            first = last = day(span)
            if step is not None:
                last = 6
        if last < first:
            raise ConfigError(f"cron weekday {field!r}: range {span!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    if days == set(range(7)):
        return "*"
    return ",".join(WEEKDAY_NAMES[d] for d in sorted(days))


def cron_trigger(expression: str, tz: tzinfo) -> CronTrigger:
    """`CronTrigger.from_crontab` with standard crontab weekdays, in `tz`."""
    if not expression.isascii():
        raise ConfigError(
            f"cron {expression!r}: write it in ASCII (digits 0-9, English day and month names), e.g. */30 * * * *"
        )
    fields = expression.split()
    if len(fields) != 5:
        raise ConfigError(f"cron {expression!r} needs 5 fields: minute hour day month weekday")
    if fields[2] != "*" and fields[4] != "*":
        raise ConfigError(
            f"cron {expression!r}: restrict the day of month or the weekday, not both "
            "(crontab would poll on either, this scheduler only on both)"
        )
    fields[4] = crontab_weekdays(fields[4])
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone=tz)
    except ValueError as exc:
        raise ConfigError(f"cron {expression!r}: {exc}") from None


def local_midnight(moment: datetime, tz: tzinfo) -> datetime:
    """The start of `moment`'s day in `tz`, as UTC."""
    day = moment.astimezone(tz).date()
    return datetime.combine(day, time(), tz).astimezone(UTC)


class PollTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no type information
    """An interval grid or a crontab in the site's zone, shifted by an offset; the jitter of each meter's poll."""

    def __init__(self, schedule: ScheduleConfig, tz: tzinfo, anchor: datetime | None = None) -> None:
        """`anchor`: any moment of the day whose local midnight anchors an interval grid (default: now)."""
        self.schedule = schedule
        self.tz = tz
        self.offset = schedule.offset
        self.jitter = schedule.jitter.total_seconds()
        self.cron = cron_trigger(schedule.cron, tz) if schedule.cron is not None else None
        self.every = schedule.every
        self.origin = local_midnight(anchor or datetime.now(UTC), tz) + self.offset

    def _grid_after(self, moment: datetime, inclusive: bool) -> datetime | None:
        """The first grid point at or after (`inclusive`) or strictly after `moment` (UTC)."""
        moment = moment.astimezone(UTC)
        if self.every is not None:
            step = self.every.total_seconds()
            count = (moment - self.origin).total_seconds() / step
            whole = int(count // 1)
            candidate = self.origin + self.every * whole
            while candidate < moment or (not inclusive and candidate == moment):
                candidate += self.every
            return candidate
        assert self.cron is not None
        start = moment - self.offset + (timedelta(0) if inclusive else _ONE_US)
        found = self.cron.get_next_fire_time(None, start.astimezone(self.tz))
        return None if found is None else found.astimezone(UTC) + self.offset

    def next_unjittered(self, previous: datetime | None, now: datetime) -> datetime | None:
        """The next grid time: after `previous` (which may carry jitter) or, first, at or after `now`."""
        if previous is None:
            return self._grid_after(now, inclusive=True)
        return self._grid_after(previous, inclusive=False)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """APScheduler's hook: the next grid time, in the site's zone (jitter is each meter's `delay`)."""
        found = self.next_unjittered(previous_fire_time, now)
        return None if found is None else found.astimezone(self.tz)

    def delay(self) -> float:
        """Seconds one meter's poll waits after a fire: a fresh random part of the jitter (0 without)."""
        return random.uniform(0, self.jitter) if self.jitter else 0.0

    def __str__(self) -> str:
        kind = f"cron {self.schedule.cron!r}" if self.schedule.cron else f"every {self.every}"
        extra = f" + {self.offset}" if self.offset else ""
        return f"{kind}{extra}" + (f", jitter ≤ {self.jitter:g} s" if self.jitter else "")


def make_trigger(schedule: ScheduleConfig, tz: tzinfo, anchor: datetime | None = None) -> PollTrigger:
    """The APScheduler trigger for `schedule` in the site's zone `tz`."""
    return PollTrigger(schedule, tz, anchor)


def fire_times(schedule: ScheduleConfig, start: datetime, end: datetime, tz: tzinfo) -> Iterator[datetime]:
    """Fire times (UTC, without jitter) with start <= t < end; an interval grid is anchored on `start`'s day."""
    trigger = PollTrigger(schedule, tz, anchor=start)
    moment = trigger.next_unjittered(None, start)
    while moment is not None and moment < end:
        yield moment
        moment = trigger.next_unjittered(moment, moment)


def expected_polls(schedule: ScheduleConfig, start: datetime, end: datetime, tz: tzinfo) -> int:
    """How many polls `schedule` makes with start <= t < end."""
    if schedule.every is None:
        return sum(1 for _ in fire_times(schedule, start, end, tz))
    first = PollTrigger(schedule, tz, anchor=start).next_unjittered(None, start)
    if first is None or first >= end:
        return 0
    return 1 + (end - first - _ONE_US) // schedule.every
