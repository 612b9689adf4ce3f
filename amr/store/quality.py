"""Power-quality samples and their events (tables ``quality_samples``, ``quality_events``).

A sample is stored once per meter and moment (a second write of the same moment is a no-op), and
with it, in the same transaction, an event for each quantity outside its limit (`amr.config`
``[quality] limits``). Samples are floats in SI units and never pass the validation of readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from amr.core.quantities import QUANTITIES
from amr.drivers.quality import QualitySample
from amr.store.operations_models import quality_events_table, quality_samples_table
from amr.store.store import Store, translate_errors


@dataclass(frozen=True, slots=True)
class Limit:
    """The bounds of one quantity (either may be None)."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class QualityEvent:
    """A quantity outside its limit in one sample."""

    meter_id: int
    ts: datetime
    quantity: str
    value: float
    threshold: float
    kind: str  # above | below


def limit_of(quantity: str, limits: Mapping[str, Limit]) -> Limit | None:
    """The limit of `quantity`: its own (``voltage_l1``), else its group's (``voltage``)."""
    if quantity in limits:
        return limits[quantity]
    group = quantity if quantity == "frequency" else quantity.rsplit("_", 1)[0]
    return limits.get(group)


def events_of(meter_id: int, sample: QualitySample, limits: Mapping[str, Limit]) -> list[QualityEvent]:
    """The quantities of `sample` outside their limits."""
    found = []
    for quantity, value in sample.values.items():
        limit = limit_of(quantity, limits)
        if limit is None:
            continue
        if limit.high is not None and value > limit.high:
            found.append(QualityEvent(meter_id, sample.measured_at, quantity, value, limit.high, "above"))
        elif limit.low is not None and value < limit.low:
            found.append(QualityEvent(meter_id, sample.measured_at, quantity, value, limit.low, "below"))
    return found


def _insert_ignoring(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(rows).on_conflict_do_nothing()
    return int(conn.execute(statement).rowcount or 0)


def save_sample(store: Store, meter_id: int, sample: QualitySample, received_at: datetime,
                limits: Mapping[str, Limit]) -> list[QualityEvent]:
    """Store `sample` and its events (once); the events it raised."""
    row: dict[str, Any] = {"meter_id": meter_id, "ts": sample.measured_at, "received_at": received_at}
    row.update({q: sample.values.get(q) for q in QUANTITIES})
    events = events_of(meter_id, sample, limits)
    with translate_errors(), store.engine.begin() as conn:
        if not _insert_ignoring(conn, quality_samples_table, [row]):
            return []  # this moment is stored already, and its events with it
        _insert_ignoring(conn, quality_events_table, [
            {"meter_id": e.meter_id, "ts": e.ts, "quantity": e.quantity, "value": e.value,
             "threshold": e.threshold, "kind": e.kind, "received_at": received_at} for e in events
        ])
    return events


def samples(store: Store, meter_id: int, start: datetime, end: datetime, limit: int = 10_000) -> list[dict[str, Any]]:
    """A meter's samples in [start, end), oldest first: ``ts`` and a value (or None) per quantity."""
    table = quality_samples_table
    statement = (select(table).where(table.c.meter_id == meter_id, table.c.ts >= start, table.c.ts < end)
                 .order_by(table.c.ts).limit(limit))
    with translate_errors(), store.engine.connect() as conn:
        return [{"ts": r["ts"], **{q: r[q] for q in QUANTITIES}} for r in conn.execute(statement).mappings()]


def events(store: Store, meter_id: int, start: datetime, end: datetime, limit: int = 1000) -> list[QualityEvent]:
    """A meter's quality events in [start, end), oldest first."""
    table = quality_events_table
    statement = (select(table).where(table.c.meter_id == meter_id, table.c.ts >= start, table.c.ts < end)
                 .order_by(table.c.ts, table.c.quantity).limit(limit))
    with translate_errors(), store.engine.connect() as conn:
        return [QualityEvent(r["meter_id"], r["ts"], r["quantity"], r["value"], r["threshold"], r["kind"])
                for r in conn.execute(statement).mappings()]
