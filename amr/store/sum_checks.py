"""The sum check kept in the store (`interval_mismatches`): per meter and channel, each pair of
consecutive register readings whose intervals do not add up to the register delta within the
register's resolution (`amr.validation.intervals.sum_check`). Such a pair reveals a clock or ratio
error (or a profile read wrongly), so it is listed for the dispatcher and counted in ``/metrics``.

`record_sum_check` judges one meter over a period and replaces what was kept of the pairs starting
in it, under the meter's sum-check lock, reading intervals and registers inside the transaction: two
processes checking one meter at once take turns, and the later one keeps what is true when it runs.
A mismatch that no longer holds (the intervals were corrected, a profile replaced an estimate) goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select

from amr.core.domain import CHANNELS
from amr.core.meters import Meter
from amr.store.interval_models import interval_mismatches_table
from amr.store.intervals import CHANNEL_CODE, CHANNEL_OF, _utc, read_intervals
from amr.store.models import meters_table, readings_table
from amr.store.rows import reading_from_row
from amr.store.store import Session, Store, translate_errors
from amr.validation.intervals import SumMismatch, sum_check

SUM_CHECK_LOCK = 32
"""A meter's sum-check rows are locked as series (meter, 32): apart from tariffs (0..4) and intervals (17..20)."""
REACH = timedelta(hours=1)
"""How far before the period intervals are read: one that starts earlier may cover its first reading."""


@dataclass(frozen=True, slots=True)
class KeptMismatch:
    """A mismatch as kept: whose, what, and when it was found."""

    serial: str
    mismatch: SumMismatch
    found_at: datetime


def record_sum_check(store: Store, meter: Meter, start: datetime, end: datetime, now: datetime) -> list[SumMismatch]:
    """Check `meter`'s intervals against its register readings in [start, end] and keep the mismatches of
    the pairs of readings starting in [start, end) in place of those kept before; the mismatches found."""

    def work(session: Session) -> list[SumMismatch]:
        session.lock([(meter.id, SUM_CHECK_LOCK)])
        conn = session.conn
        intervals = read_intervals(conn, meter.serial, start - REACH, end)
        rows = conn.execute(
            select(readings_table)
            .where(readings_table.c.meter_id == meter.id, readings_table.c.tariff == 0, readings_table.c.ts >= start,
                   readings_table.c.ts <= end)
            .order_by(readings_table.c.ts)
        ).mappings()  # fmt: skip
        readings = [reading_from_row(row) for row in rows]
        found: list[SumMismatch] = []
        for channel in CHANNELS:
            own = [v for v in intervals if v.channel is channel]
            if own:
                found.extend(sum_check(meter, channel, own, readings))
        conn.execute(
            delete(interval_mismatches_table).where(
                interval_mismatches_table.c.meter_id == meter.id,
                interval_mismatches_table.c.start >= start,
                interval_mismatches_table.c.start < end,
            )
        )
        if found:
            conn.execute(
                insert(interval_mismatches_table),
                [
                    {
                        "meter_id": meter.id,
                        "channel": CHANNEL_CODE[m.channel],
                        "start": m.start,
                        "end": m.end,
                        "register_wh": m.register_wh,
                        "intervals_wh": m.intervals_wh,
                        "tolerance_wh": m.tolerance_wh,
                        "found_at": now,
                    }
                    for m in found
                ],
            )
        return found

    return store.write(work)


def kept_mismatches(
    store: Store,
    serials: Iterable[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
) -> list[KeptMismatch]:
    """Kept mismatches of the meters `serials` (every meter when None) whose earlier reading lies in
    [start, end), newest first."""
    table = interval_mismatches_table
    statement = select(meters_table.c.serial, *table.columns).join(meters_table, meters_table.c.id == table.c.meter_id)
    if serials is not None:
        wanted = sorted(set(serials))
        if not wanted:
            return []
        statement = statement.where(meters_table.c.serial.in_(wanted))
    if start is not None:
        statement = statement.where(interval_mismatches_table.c.start >= start)
    if end is not None:
        statement = statement.where(interval_mismatches_table.c.start < end)
    statement = statement.order_by(interval_mismatches_table.c.start.desc(), meters_table.c.serial).limit(limit)
    with translate_errors(), store.engine.connect() as conn:
        return [
            KeptMismatch(
                serial=str(row.serial),
                mismatch=SumMismatch(
                    CHANNEL_OF[int(row.channel)], _utc(row.start), _utc(row.end), int(row.register_wh),
                    int(row.intervals_wh), int(row.tolerance_wh),
                ),
                found_at=_utc(row.found_at),
            )
            for row in conn.execute(statement)
        ]


def mismatch_counts(store: Store) -> dict[str, int]:
    """Kept mismatches by channel name (``/metrics``)."""
    statement = select(interval_mismatches_table.c.channel, func.count()).group_by(interval_mismatches_table.c.channel)
    with translate_errors(), store.engine.connect() as conn:
        return {CHANNEL_OF[int(code)].value: int(count) for code, count in conn.execute(statement)}
