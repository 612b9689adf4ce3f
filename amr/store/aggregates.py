"""Consumption from TimescaleDB's continuous aggregates instead of every reading.

Each aggregate row holds the first and last reading of a bucket (time, values) and how
many readings of the bucket were flagged as a rollover. Those readings, with the wraps
between them, are the samples consumption needs: energy is cumulative, so the readings
in between change nothing but the wrap count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text

from amr.core.domain import CHANNELS, Flag, StoredReading
from amr.outputs.consumption import Step
from amr.store.models import UTCDateTime
from amr.store.rows import _utc

VIEWS = {Step.HALF_HOUR: "readings_30min", Step.DAY: "readings_daily", Step.MONTH: "readings_monthly"}
ROLLOVER = int(Flag.ROLLOVER)


def _sample(meter_id: int, tariff: int, row: Any, end: str, wraps: int) -> StoredReading:
    ts = _utc(row[f"{end}_ts"])
    return StoredReading(
        meter_id=meter_id,
        ts=ts,
        tariff=tariff,
        values={c: row[f"{end}_{c.value}"] for c in CHANNELS},
        source="aggregate",
        flags=ROLLOVER if wraps else 0,
        received_at=ts,
    )


def bucket_samples(
    conn: Connection, meter_id: int, tariff: int, step: Step, start: datetime, end: datetime
) -> list[StoredReading] | None:
    """The first and last reading of every bucket from `start` to `end`, each flagged when a wrap lies
    between it and the sample before; None when two wraps fall between samples (then read every row)."""
    view = VIEWS[step]
    columns = ", ".join(f"{end}_{c.value}" for end in ("first", "last") for c in CHANNELS)
    statement = text(
        f"SELECT first_ts, first_flags, last_ts, rollovers, {columns} FROM {view} "
        "WHERE meter_id = :m AND tariff = :t AND bucket >= :s AND bucket <= :e ORDER BY bucket"
    ).bindparams(bindparam("s", type_=UTCDateTime()), bindparam("e", type_=UTCDateTime()))
    rows = conn.execute(statement, {"m": meter_id, "t": tariff, "s": start, "e": end}).mappings().all()
    samples: list[StoredReading] = []
    for row in rows:
        first_wrap = row["first_flags"] & ROLLOVER
        inside = int(row["rollovers"]) - first_wrap  # wraps after the bucket's first reading
        if inside > 1:
            return None
        samples.append(_sample(meter_id, tariff, row, "first", first_wrap if samples else 0))
        if row["last_ts"] != row["first_ts"]:
            samples.append(_sample(meter_id, tariff, row, "last", inside))
    return samples
