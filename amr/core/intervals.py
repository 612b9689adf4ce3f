"""Interval data: energy per fixed period (a meter's load profile), the vocabulary shared by drivers,
the store, validation and the outputs.

An interval is identified by (meter, channel, start); its energy is an exact integer of Wh
(active) or varh (reactive). Drivers report what the meter's memory says at the meter's side of
the instrument transformers (`ProfileRecord`, secondary side); `IntervalValue` is what is stored,
at the primary side (CT × VT in force at the interval's start). Times are timezone-aware UTC; an
interval's start is aligned to its length in UTC (a meter's 30-minute profile starts at :00 and :30).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from amr.core.domain import Channel

DEFAULT_INTERVAL = timedelta(minutes=30)
INTERVAL_LENGTHS: tuple[timedelta, ...] = (timedelta(minutes=15), timedelta(minutes=30), timedelta(minutes=60))


class IntervalStatus(str, enum.Enum):
    """How far an interval's energy can be trusted."""

    MEASURED = "measured"  # read from the meter's profile (or derived from registers at both ends)
    INCOMPLETE = "incomplete"  # the meter marked it: power failure, clock change or a partial interval
    ESTIMATED = "estimated"  # filled in by estimation; `IntervalValue.method` says how


class IntervalSource(str, enum.Enum):
    """Where an interval value came from, beside the reading sources of `amr.core.domain.Source`."""

    PROFILE = "profile"  # the meter's own profile memory, read by its driver
    DERIVED = "derived"  # the difference of two register readings at the interval's edges
    ESTIMATED = "estimated"  # estimation; see `IntervalValue.method`
    MANUAL = "manual"  # a dispatcher's substitution (audited)


class ProfileFlag(enum.IntFlag):
    """What a meter's status bits say of one profile record (the causes of `IntervalStatus.INCOMPLETE`)."""

    NONE = 0
    POWER_FAILURE = 1  # the meter was off for part (or all) of the interval
    CLOCK_CHANGED = 2  # the meter's clock was set or corrected within the interval
    PARTIAL = 4  # the interval is shorter than its period (first after start-up, DST, ...)
    OVERFLOW = 8  # the meter's counter for the interval overflowed
    INVALID = 16  # the meter marks the record as not valid


def aligned(start: datetime, length: timedelta = DEFAULT_INTERVAL) -> bool:
    """True when `start` (aware) lies on a boundary of `length` in UTC."""
    seconds = int(start.astimezone(UTC).timestamp())
    return seconds % int(length.total_seconds()) == 0 and start.microsecond == 0


def floor_interval(moment: datetime, length: timedelta = DEFAULT_INTERVAL) -> datetime:
    """The start of the interval of `length` that holds `moment` (aware), in UTC."""
    step = int(length.total_seconds())
    seconds = int(moment.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """One record of a meter's profile memory as its driver decoded it (secondary side).

    `energy` maps the channels the meter records to Wh/varh for the interval that starts at
    `start` (UTC) and lasts `length`; a channel the meter does not record is absent. `flags`
    are the meter's status bits for the record; `raw` is the record's bytes or data as read,
    kept for the audit of a disputed value. `exact`, when given, is the energy as the meter's
    own units give it where that is not a whole number of Wh (Mercury: N × 500 / A Wh for N
    pulses and meter constant A); the primary side is then computed from it, so CT × VT scales
    the exact value before the one rounding to Wh.
    """

    start: datetime
    length: timedelta
    energy: dict[Channel, int]
    flags: ProfileFlag = ProfileFlag.NONE
    raw: bytes | str | None = None
    exact: Mapping[Channel, Fraction] | None = None

    @property
    def status(self) -> IntervalStatus:
        """`INCOMPLETE` when any status bit is set, else `MEASURED`."""
        return IntervalStatus.INCOMPLETE if self.flags else IntervalStatus.MEASURED


@dataclass(frozen=True, slots=True)
class IntervalValue:
    """One stored interval of one channel, at the primary side."""

    serial: str
    channel: Channel
    start: datetime  # UTC, aligned to `length`
    length: timedelta
    wh: int  # exact energy, Wh or varh at the primary side
    status: IntervalStatus
    source: IntervalSource
    received_at: datetime  # UTC: when the service got it
    method: str | None = None  # for estimated values: "shape", "linear", ...
    flags: ProfileFlag = ProfileFlag.NONE

    @property
    def end(self) -> datetime:
        """The interval's end (exclusive)."""
        return self.start + self.length
