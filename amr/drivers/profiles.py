"""The ``profiles`` capability: a driver that reads the meter's own load profile from its memory.

A driver class that can (its spec lists ``"profiles"`` among its capabilities) also derives from
`ProfileReader`. It reports records at the meter's side of the instrument transformers
(`ProfileRecord`); `to_intervals` turns them into stored `IntervalValue` at the primary side,
CT × VT in force at each interval's start, as `amr.drivers.normalise` does for registers.

How far back a meter's memory reaches (`memory_depth`) is the model's (Mercury 230: 4096 records,
85 days at 30 minutes), or the meter's ``profile_depth`` key when the configuration gives one.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from datetime import datetime, timedelta
from fractions import Fraction

from amr.config import MeterConfig
from amr.core.intervals import IntervalSource, IntervalValue, ProfileRecord, aligned
from amr.core.meters import Meter
from amr.errors import ProtocolError


class ProfileRecords(list[ProfileRecord]):
    """Records as read, and how far the meter's profile is final (`complete_until`, UTC).

    Intervals at or after `complete_until` are not closed in the meter yet (its running interval,
    by its own clock, which may lag ours): a reader that knows says so, and back-fill does not
    count them as read. None: every interval before the range's end is final.
    """

    complete_until: datetime | None = None


class ProfileReader(abc.ABC):
    """A poll driver that reads interval records from the meter's profile memory."""

    @abc.abstractmethod
    async def read_profile(self, meter: MeterConfig, start: datetime, end: datetime) -> list[ProfileRecord]:
        """The records of `meter` whose intervals start in [`start`, `end`) (aware), oldest first.

        Intervals the meter holds no record of (it was off, or they are older than its memory)
        are absent; a `ProfileRecords` may say how far the meter's profile is final. Raise
        `ReadTimeout`, `ProtocolError`, `DeviceError` or `ConnectError` as a read does.
        """

    @abc.abstractmethod
    def memory_depth(self, meter: MeterConfig) -> timedelta:
        """How far back the meter's profile memory reaches."""

    def cannot_read(self, meter: MeterConfig) -> str | None:
        """Why this meter's profile cannot be read as configured (None: it can)."""
        return None


def configured_depth(meter: MeterConfig, default: timedelta) -> timedelta:
    """The meter's ``profile_depth`` setting when its protocol takes one, else `default`."""
    depth = getattr(meter.settings, "profile_depth", None)
    return depth if isinstance(depth, timedelta) else default


def check_record(record: ProfileRecord) -> None:
    """A record's start must be aware and on a boundary of its length; `ProtocolError` otherwise."""
    if record.start.tzinfo is None or not aligned(record.start, record.length):
        raise ProtocolError(
            f"profile record at {record.start.isoformat()} is not on a {record.length} boundary: "
            "the meter's clock or integration period is off"
        )


def to_intervals(
    serial: str, records: Iterable[ProfileRecord], meter: Meter | None, received_at: datetime
) -> list[IntervalValue]:
    """One `IntervalValue` per record and channel, at the primary side (exact until one rounding)."""
    values: list[IntervalValue] = []
    for record in records:
        check_record(record)
        ratio = Fraction(1) if meter is None else meter.ratio_at(record.start)
        exact = record.exact or {c: Fraction(v) for c, v in record.energy.items()}
        for channel, energy in exact.items():
            values.append(
                IntervalValue(
                    serial=serial,
                    channel=channel,
                    start=record.start,
                    length=record.length,
                    wh=round(energy * ratio),
                    status=record.status,
                    source=IntervalSource.PROFILE,
                    received_at=received_at,
                    flags=record.flags,
                )
            )
    return values


def profile_reader(driver: object) -> ProfileReader | None:
    """`driver` as a `ProfileReader`, or None when its protocol reads no profiles."""
    return driver if isinstance(driver, ProfileReader) else None
