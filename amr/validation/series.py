"""The accepted series of one meter and tariff, per channel, around a batch's time range."""

from __future__ import annotations

import bisect
from dataclasses import replace
from datetime import datetime

from amr.core.domain import CHANNELS, Channel, Flag, StoredReading


class Series:
    """Accepted readings of one (meter, tariff) known to the pipeline, searchable per channel.

    Built from what the store loaded (readings inside the batch's range plus each
    channel's nearest neighbours outside it) and grown as the batch is accepted.
    """

    def __init__(self, readings: list[StoredReading]) -> None:
        self.by_ts: dict[datetime, StoredReading] = {}
        self.times: dict[Channel, list[datetime]] = {c: [] for c in CHANNELS}
        for reading in sorted(readings, key=lambda r: r.ts):
            self.add(reading)

    def add(self, reading: StoredReading) -> None:
        """Insert an accepted reading (its timestamp must be new to the series)."""
        self.by_ts[reading.ts] = reading
        for channel in CHANNELS:
            if reading.values.get(channel) is not None:
                times = self.times[channel]
                if not times or times[-1] < reading.ts:
                    times.append(reading.ts)
                else:
                    bisect.insort(times, reading.ts)

    def set_flags(self, reading: StoredReading, flags: int) -> StoredReading:
        """Replace a reading's flags; returns the updated reading."""
        updated = replace(reading, flags=flags)
        self.by_ts[reading.ts] = updated
        return updated

    def around(self, channel: Channel, ts: datetime) -> tuple[StoredReading | None, StoredReading | None]:
        """The readings just before and just after `ts` that have `channel` (`ts` itself is not stored)."""
        times = self.times[channel]
        if not times:
            return None, None
        if times[-1] < ts:
            return self.by_ts[times[-1]], None
        index = bisect.bisect_left(times, ts)
        prev = self.by_ts[times[index - 1]] if index else None
        return prev, self.by_ts[times[index]] if index < len(times) else None

    def previous(self, channel: Channel, ts: datetime) -> StoredReading | None:
        """The last reading before `ts` that has `channel`."""
        times = self.times[channel]
        index = bisect.bisect_left(times, ts)
        return self.by_ts[times[index - 1]] if index else None

    def next(self, channel: Channel, ts: datetime) -> StoredReading | None:
        """The first reading after `ts` that has `channel`."""
        times = self.times[channel]
        index = bisect.bisect_right(times, ts)
        return self.by_ts[times[index]] if index < len(times) else None


def with_rollover(flags: int, wrapped: bool) -> int:
    """`flags` with the rollover bit set or cleared."""
    return flags | Flag.ROLLOVER if wrapped else flags & ~Flag.ROLLOVER
