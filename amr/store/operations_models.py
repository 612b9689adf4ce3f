"""Tables of meter operations (migration 0010): relay commands, power-quality samples and their events.

Instantaneous values are floats in SI units, kept apart from readings: they are measurements
of a moment, not cumulative energy, and never pass the validation of readings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from amr.core.quantities import QUANTITIES
from amr.store.models import Base, UTCDateTime


class RelayCommandRow(Base):
    """A relay command: queued by a dispatcher, claimed and carried out once by a collector."""

    __tablename__ = "relay_commands"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    serial: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # disconnect | reconnect | read
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed | expired
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    state: Mapped[str | None] = mapped_column(String(32), nullable=True)  # read back from the meter
    supplied: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    acted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_relay_commands_due", "status", "next_try_at"),
        Index("ix_relay_commands_meter", "meter_id", "id"),
    )


class QualitySampleRow(Base):
    """Instantaneous values of one meter at one moment (V, A, W, Hz; power factor without unit)."""

    __tablename__ = "quality_samples"
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


for _quantity in QUANTITIES:
    setattr(QualitySampleRow, _quantity, mapped_column(_quantity, Float, nullable=True))


class QualityEventRow(Base):
    """A quantity outside its configured limit in one sample (stored once per meter, time and quantity)."""

    __tablename__ = "quality_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    quantity: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(8))  # above | below
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("meter_id", "ts", "quantity", name="uq_quality_events_sample"),)
