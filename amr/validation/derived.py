"""Intervals derived from register readings, for meters whose protocol keeps no load profile (Modbus,
DLMS here): source `derived`, status `measured`, exact integer Wh.

An **edge** is an interval boundary — a UTC time that is a whole multiple of the interval length
(:00 and :30 for half-hours) — that has an accepted total (tariff 0) reading of the channel within
``[intervals] edge_tolerance`` of it, before or after; the reading nearest the edge is its value
(the earlier one on a tie). An interval is derived when both its edges have a value, the register did
not go down between them (a wrap or a replaced register), the meter's ratio is the same at both, and
the later edge is *settled*: more than the tolerance in the past, so no nearer reading can still come
and a value once derived never changes. Its energy is the register delta, exactly: readings are stored
at the primary side in integer Wh. A reading a few seconds off the edge moves a few seconds of energy
between neighbouring intervals; the edge tolerance bounds that.

A derived value ranks above an estimate and below a profile read from the meter
(`amr.store.intervals.RANK`): it fills a gap estimation would otherwise guess, and a profile read
later replaces it (kept as a revision).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime, timedelta

from amr.core.domain import CHANNELS, Channel, StoredReading
from amr.core.intervals import DEFAULT_INTERVAL, IntervalSource, IntervalStatus, IntervalValue, floor_interval
from amr.core.meters import Meter

METHOD = "registers"
"""The `method` a derived value carries: the difference of two register readings at its edges."""


def edge_values(
    readings: Sequence[StoredReading], channel: Channel, edges: Sequence[datetime], tolerance: timedelta
) -> dict[datetime, int]:
    """The register value of `channel` at each edge that has a reading within `tolerance` (the
    nearest; the earlier on a tie). `readings` in time order."""
    points = [(r.ts, v) for r in readings if r.tariff == 0 and (v := r.values.get(channel)) is not None]
    times = [t for t, _ in points]
    found: dict[datetime, int] = {}
    for edge in edges:
        i = bisect_left(times, edge - tolerance)
        best: tuple[timedelta, int] | None = None
        while i < len(points) and times[i] <= edge + tolerance:
            off = abs(times[i] - edge)
            if best is None or off < best[0]:
                best = (off, points[i][1])
            i += 1
        if best is not None:
            found[edge] = best[1]
    return found


def ceil_edge(moment: datetime, length: timedelta) -> datetime:
    """The first interval boundary at or after `moment`."""
    edge = floor_interval(moment, length)
    return edge if edge == moment else edge + length


def derive(
    meter: Meter,
    readings: Sequence[StoredReading],
    start: datetime,
    end: datetime,
    now: datetime,
    tolerance: timedelta,
    length: timedelta = DEFAULT_INTERVAL,
) -> list[IntervalValue]:
    """The intervals of `length` starting in [start, end) that two register readings bracket (see the
    module), for each channel; `readings` are the meter's accepted readings in time order over
    [start − tolerance, end + length + tolerance]."""
    settled = ceil_edge(now - tolerance, length) - length  # the latest edge no nearer reading can still reach
    last_edge = min(ceil_edge(end, length), settled)  # the end of the last interval starting before `end`
    edges: list[datetime] = []
    at = ceil_edge(start, length)
    while at <= last_edge:
        edges.append(at)
        at += length
    values: list[IntervalValue] = []
    for channel in CHANNELS:
        known = edge_values(readings, channel, edges, tolerance)
        for e1, e2 in zip(edges, edges[1:], strict=False):
            if e1 >= end:
                break
            a, b = known.get(e1), known.get(e2)
            if a is None or b is None or b < a or meter.ratio_at(e1) != meter.ratio_at(e2):
                continue
            values.append(
                IntervalValue(
                    meter.serial, channel, e1, length, b - a, IntervalStatus.MEASURED, IntervalSource.DERIVED, now,
                    METHOD,
                )
            )
    return values
