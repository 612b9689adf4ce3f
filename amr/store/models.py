"""Typed SQLAlchemy models: the hierarchy, readings, refused readings and the audit trail.

Energy columns are BIGINT Wh/varh at the primary side: exact, never floats.
Timestamps are UTC (TIMESTAMPTZ on PostgreSQL; ISO text in UTC on SQLite).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; timestamps must be UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    """Declarative base of every table."""


class ObjectRow(Base):
    """An object (объект): a substation, a house."""

    __tablename__ = "objects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class PointRow(Base):
    """A metering point; successive meters on it form separate series."""

    __tablename__ = "metering_points"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id"))


class MeterRow(Base):
    """A meter, mirrored from the configuration file."""

    __tablename__ = "meters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"))
    name: Mapped[str] = mapped_column(String(200), index=True)
    model: Mapped[str] = mapped_column(String(100), default="")
    digits: Mapped[int] = mapped_column(SmallInteger)
    decimals: Mapped[int] = mapped_column(SmallInteger)
    tariffs: Mapped[int] = mapped_column(SmallInteger)
    max_power_kw: Mapped[Any] = mapped_column(Numeric(14, 3), nullable=True)
    installed: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    removed: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the field side, kept by the registry (`amr.registry`, 0012); a meter mirrored from the TOML has none
    bus_id: Mapped[int | None] = mapped_column(ForeignKey("buses.id"), nullable=True, index=True)
    address: Mapped[str | None] = mapped_column(String(200), nullable=True)  # JSON: 5 or "5"
    schedule: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    timeout_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retries: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    settings: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON: the protocol's keys
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # taken out of the registry


class BusRow(Base):
    """A bus of the registry: the common keys and its kind's own settings (JSON)."""

    __tablename__ = "buses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(500))
    timeout_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retries: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    retry_backoff_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule: Mapped[str | None] = mapped_column(Text, nullable=True)
    settings: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


class RegistryStateRow(Base):
    """One row: the registry's change counter, compared by every reader (`amr.registry.watch`)."""

    __tablename__ = "registry_state"
    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class MeterAccountRow(Base):
    """Links a meter to a personal account (лицевой счёт)."""

    __tablename__ = "meter_accounts"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class MeterRatioRow(Base):
    """A CT and VT ratio version of a meter, in force from `since`."""

    __tablename__ = "meter_ratios"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    version: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ct: Mapped[Any] = mapped_column(Numeric(18, 6))
    vt: Mapped[Any] = mapped_column(Numeric(18, 6))


class ReadingRow(Base):
    """An accepted reading: four cumulative channels of one tariff zone at one instant."""

    __tablename__ = "readings"
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tariff: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    a_plus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    a_minus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    r_plus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    r_minus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(32))
    flags: Mapped[int] = mapped_column(SmallInteger, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # A- and R- are absent from most consumers' readings: their last value is found through these (0006).
    __table_args__ = tuple(
        Index(
            f"ix_readings_{c}_present",
            "meter_id",
            "tariff",
            "ts",
            postgresql_where=text(f"{c} IS NOT NULL"),
            sqlite_where=text(f"{c} IS NOT NULL"),
        )
        for c in ("a_minus", "r_minus")
    )


class RejectedRow(Base):
    """A refused reading, kept with its reasons and original payload until a dispatcher acts."""

    __tablename__ = "rejected_readings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_serial: Mapped[str] = mapped_column(String(200))
    meter_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ts: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tariff: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    a_plus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    a_minus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    r_plus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    r_minus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_rejected_status_received", "status", "received_at"),)


class AuditRow(Base):
    """Who changed what, when and why."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text, default="{}")


class MeterHealthRow(Base):
    """How a meter answers the collector: status, last poll, last error, counters (`amr.store.health`)."""

    __tablename__ = "meter_health"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # online | degraded | offline | unknown
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(BigInteger, default=0)


class MeterEventRow(Base):
    """One meter event (`amr.core.events`), stored once however often its journal is read (0010).

    ``alarm`` is the alarm's delivery state: NULL (no alarm for this event), ``pending`` (to be
    sent; survives a restart) or ``sent``.
    """

    __tablename__ = "meter_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    code: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(200), default="")
    raw: Mapped[str] = mapped_column(Text, default="{}")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    alarm: Mapped[str | None] = mapped_column(String(10), nullable=True)
    alarm_attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("meter_id", "ts", "code", "detail", name="uq_meter_events_key"),
        Index("ix_meter_events_alarm", "alarm"),
    )


class MeterClockRow(Base):
    """The last clock check of a meter: drift, state and the last correction (0010)."""

    __tablename__ = "meter_clock"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    meter_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    drift_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # meter − head-end
    state: Mapped[str] = mapped_column(String(16))  # ok | drifting | corrected | refused | uncorrectable
    message: Mapped[str] = mapped_column(Text, default="")
    corrected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    correction_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ClockRequestRow(Base):
    """A dispatcher's request to correct a meter's clock, waiting for the collector that polls it (0010)."""

    __tablename__ = "clock_requests"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")


class CollectorRow(Base):
    """A running (or once running) `amr collect` process and its last heartbeat (`amr.store.leases`)."""

    __tablename__ = "collectors"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:random
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BusLeaseRow(Base):
    """Who polls a bus (or a group of a Modbus TCP bus's devices) until when (`amr.store.leases`)."""

    __tablename__ = "bus_leases"
    lease: Mapped[str] = mapped_column(String(300), primary_key=True)  # "bus" or "bus/host:port"
    bus: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # held by `owner` since
    expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    meters: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_bus_leases_owner", "owner"),)


from amr.store import operations_models as _operations_models  # noqa: E402, F401  (their tables join Base.metadata)
