"""Tables of meter operations (migration 0010): relay commands, power-quality samples and their events.

Instantaneous values are floats in SI units, kept apart from readings: they are measurements
of a moment, not cumulative energy, and never pass the validation of readings.
Tables are named and declared as in `amr.store.models`.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from amr.core.quantities import QUANTITIES
from amr.store.models import UTCDateTime, metadata

relay_commands_table = Table(
    "relay_commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meter_id", Integer, ForeignKey("meters.id"), nullable=False),
    Column("serial", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # disconnect | reconnect | read
    Column("reason", Text, nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | done | failed | expired
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("state", String(32), nullable=True),  # read back from the meter
    Column("supplied", Boolean, nullable=True),
    Column("acted", Boolean, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Index("ix_relay_commands_due", "status", "next_try_at"),
    Index("ix_relay_commands_meter", "meter_id", "id"),
)
"""A relay command: queued by a dispatcher, claimed and carried out once by a collector."""

quality_samples_table = Table(
    "quality_samples",
    metadata,
    Column("meter_id", Integer, primary_key=True),
    Column("ts", UTCDateTime, primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    *(Column(quantity, Float, nullable=True) for quantity in QUANTITIES),
)
"""Instantaneous values of one meter at one moment (V, A, W, Hz; power factor without unit)."""

quality_events_table = Table(
    "quality_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meter_id", Integer, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("quantity", String(32), nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("kind", String(8), nullable=False),  # above | below
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("meter_id", "ts", "quantity", name="uq_quality_events_sample"),
)
"""A quantity outside its configured limit in one sample (stored once per meter, time and quantity)."""
