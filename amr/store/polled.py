"""Which meters were already polled in their current slot: a collector that takes a lease over asks first.

A poll that read something leaves a reading (``readings.received_at`` is the poll's time) or a
refused one (``rejected_readings``). Either since the slot's start means someone polled the
meter in that slot: the taker does not poll it again. ``meter_health`` is no witness: a
collector saves a meter's health with the batch before the one carrying its readings, and
may die in between. A failed poll leaves nothing, so the taker tries that meter once more.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from amr.store.store import translate_errors

CLOCK_SLACK = timedelta(hours=1)  # a reading's ts (the meter's clock) may lag its received_at this much

_POLLED = text(
    "SELECT u.id FROM unnest(CAST(:ids AS int[]), CAST(:since AS timestamptz[])) AS u(id, since) "
    "WHERE EXISTS (SELECT 1 FROM readings r WHERE r.meter_id = u.id AND r.ts >= u.since - CAST(:slack AS interval)"
    "              AND r.received_at >= u.since) "
    "   OR EXISTS (SELECT 1 FROM rejected_readings j WHERE j.meter_id = u.id AND j.received_at >= u.since)"
)


def polled_since(engine: Engine, slots: Mapping[int, datetime]) -> set[int]:
    """The meter ids of `slots` (meter id → its slot's start, UTC) polled at or after that start (PostgreSQL)."""
    if not slots:
        return set()
    ids = list(slots)
    with translate_errors(), engine.connect() as conn:
        rows = conn.execute(_POLLED, {
            "ids": ids, "since": [slots[i] for i in ids], "slack": f"{CLOCK_SLACK.total_seconds():.0f} seconds",
        })
        return {int(row[0]) for row in rows}
