"""Tables of the store (SQLAlchemy Core): the hierarchy, readings, refused readings and the audit trail.

Every table of every ``*_models`` module is a `sqlalchemy.Table` on the one `metadata` below,
named in Python as its SQL name with ``_table`` added (``meters_table`` is the table ``meters``,
its columns ``meters_table.c.serial``); the suffix keeps the names apart from the many variables
and modules called ``meters``, ``readings`` or ``intervals``. The store runs Core statements
only, so no ORM mapping is declared (importing and configuring it would slow every start).

Columns are NOT NULL unless ``nullable=True`` says otherwise (a primary key is never NULL).
Energy columns are BIGINT Wh/varh at the primary side: exact, never floats.
Timestamps are UTC (TIMESTAMPTZ on PostgreSQL; ISO text in UTC on SQLite).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)


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


metadata = MetaData()
"""The schema of every table (what `amr.store.migrations` is compared with)."""

objects_table = Table(
    "objects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
)
"""An object (объект): a substation, a house."""

metering_points_table = Table(
    "metering_points",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(100), nullable=False, unique=True),
    Column("object_id", Integer, ForeignKey("objects.id"), nullable=False, index=True),  # 0014
)
"""A metering point; successive meters on it form separate series."""

meters_table = Table(
    "meters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("serial", String(64), nullable=False, unique=True),
    Column("point_id", Integer, ForeignKey("metering_points.id"), nullable=False, index=True),  # 0014
    Column("name", String(200), nullable=False, index=True),
    Column("model", String(100), nullable=False, default=""),
    Column("digits", SmallInteger, nullable=False),
    Column("decimals", SmallInteger, nullable=False),
    Column("tariffs", SmallInteger, nullable=False),
    Column("max_power_kw", Numeric(14, 3), nullable=True),
    Column("installed", UTCDateTime, nullable=True),
    Column("removed", UTCDateTime, nullable=True),
    # the field side, kept by the registry (`amr.registry`, 0012); a meter mirrored from the TOML has none
    Column("bus_id", Integer, ForeignKey("buses.id"), nullable=True, index=True),
    Column("address", String(200), nullable=True),  # JSON: 5 or "5"
    Column("schedule", Text, nullable=True),  # JSON
    Column("timeout_ms", Integer, nullable=True),
    Column("retries", SmallInteger, nullable=True),
    Column("settings", Text, nullable=False, default="{}", server_default="{}"),  # JSON: the protocol's keys
    Column("retired_at", UTCDateTime, nullable=True),  # taken out of the registry
)
"""A meter, mirrored from the configuration file."""

buses_table = Table(
    "buses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("url", String(500), nullable=False),
    Column("timeout_ms", Integer, nullable=True),
    Column("retries", SmallInteger, nullable=True),
    Column("retry_backoff_ms", Integer, nullable=True),
    Column("schedule", Text, nullable=True),
    Column("settings", Text, nullable=False, default="{}", server_default="{}"),
)
"""A bus of the registry: the common keys and its kind's own settings (JSON)."""

registry_state_table = Table(
    "registry_state",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
"""One row: the registry's change counter, compared by every reader (`amr.registry.watch`)."""

meter_accounts_table = Table(
    "meter_accounts",
    metadata,
    Column("meter_id", Integer, ForeignKey("meters.id"), primary_key=True),
    Column("account", String(64), primary_key=True, index=True),
)
"""Links a meter to a personal account (лицевой счёт)."""

meter_ratios_table = Table(
    "meter_ratios",
    metadata,
    Column("meter_id", Integer, ForeignKey("meters.id"), primary_key=True),
    Column("version", SmallInteger, primary_key=True),
    Column("since", UTCDateTime, nullable=True),
    Column("ct", Numeric(18, 6), nullable=False),
    Column("vt", Numeric(18, 6), nullable=False),
)
"""A CT and VT ratio version of a meter, in force from `since`."""

readings_table = Table(
    "readings",
    metadata,
    Column("meter_id", Integer, primary_key=True),
    Column("tariff", SmallInteger, primary_key=True),
    Column("ts", UTCDateTime, primary_key=True),
    Column("a_plus", BigInteger, nullable=True),
    Column("a_minus", BigInteger, nullable=True),
    Column("r_plus", BigInteger, nullable=True),
    Column("r_minus", BigInteger, nullable=True),
    Column("source", String(32), nullable=False),
    Column("flags", SmallInteger, nullable=False, default=0),
    Column("received_at", UTCDateTime, nullable=False),
    # A- and R- are absent from most consumers' readings: their last value is found through these (0006).
    *(
        Index(
            f"ix_readings_{c}_present",
            "meter_id",
            "tariff",
            "ts",
            postgresql_where=text(f"{c} IS NOT NULL"),
            sqlite_where=text(f"{c} IS NOT NULL"),
        )
        for c in ("a_minus", "r_minus")
    ),
)
"""An accepted reading: four cumulative channels of one tariff zone at one instant."""

rejected_readings_table = Table(
    "rejected_readings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meter_serial", String(200), nullable=False),
    Column("meter_id", Integer, nullable=True),
    Column("ts", UTCDateTime, nullable=True),
    Column("tariff", SmallInteger, nullable=True),
    Column("a_plus", BigInteger, nullable=True),
    Column("a_minus", BigInteger, nullable=True),
    Column("r_plus", BigInteger, nullable=True),
    Column("r_minus", BigInteger, nullable=True),
    Column("source", String(32), nullable=False),
    Column("reasons", String(300), nullable=False),
    Column("message", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False, default="open"),
    Column("resolved_by", String(100), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolution", Text, nullable=True),
    Index("ix_rejected_status_received", "status", "received_at"),
)
"""A refused reading, kept with its reasons and original payload until a dispatcher acts."""

audit_log_table = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("details", Text, nullable=False, default="{}"),
)
"""Who changed what, when and why."""

meter_health_table = Table(
    "meter_health",
    metadata,
    Column("meter_id", Integer, ForeignKey("meters.id"), primary_key=True),
    Column("status", String(16), nullable=False),  # online | degraded | offline | unknown
    Column("last_poll_at", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", UTCDateTime, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("polls", BigInteger, nullable=False, default=0),
    Column("failures", BigInteger, nullable=False, default=0),
)
"""How a meter answers the collector: status, last poll, last error, counters (`amr.store.health`)."""

meter_events_table = Table(
    "meter_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meter_id", Integer, ForeignKey("meters.id"), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("code", String(40), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("source", String(16), nullable=False),
    Column("detail", String(200), nullable=False, default=""),
    Column("raw", Text, nullable=False, default="{}"),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("alarm", String(10), nullable=True),
    Column("alarm_attempts", Integer, nullable=False, default=0),
    UniqueConstraint("meter_id", "ts", "code", "detail", name="uq_meter_events_key"),
    Index("ix_meter_events_alarm", "alarm"),
)
"""One meter event (`amr.core.events`), stored once however often its journal is read (0010).

``alarm`` is the alarm's delivery state: NULL (no alarm for this event), ``pending`` (to be
sent; survives a restart) or ``sent``.
"""

meter_clock_table = Table(
    "meter_clock",
    metadata,
    Column("meter_id", Integer, ForeignKey("meters.id"), primary_key=True),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("meter_time", UTCDateTime, nullable=True),
    Column("drift_ms", BigInteger, nullable=True),  # meter − head-end
    Column("state", String(16), nullable=False),  # ok | drifting | corrected | refused | uncorrectable
    Column("message", Text, nullable=False, default=""),
    Column("corrected_at", UTCDateTime, nullable=True),
    Column("correction_ms", BigInteger, nullable=True),
)
"""The last clock check of a meter: drift, state and the last correction (0010)."""

clock_requests_table = Table(
    "clock_requests",
    metadata,
    Column("meter_id", Integer, ForeignKey("meters.id"), primary_key=True),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("reason", Text, nullable=False, default=""),
)
"""A dispatcher's request to correct a meter's clock, waiting for the collector that polls it (0010)."""

collectors_table = Table(
    "collectors",
    metadata,
    Column("id", String(200), primary_key=True),  # host:pid:random
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
)
"""A running (or once running) `amr collect` process and its last heartbeat (`amr.store.leases`)."""

bus_leases_table = Table(
    "bus_leases",
    metadata,
    Column("lease", String(300), primary_key=True),  # "bus" or "bus/host:port"
    Column("bus", String(200), nullable=False),
    Column("owner", String(200), nullable=True),
    Column("since", UTCDateTime, nullable=True),  # held by `owner` since
    Column("expires", UTCDateTime, nullable=True),
    Column("meters", Integer, nullable=False, default=0),
    Index("ix_bus_leases_owner", "owner"),
)
"""Who polls a bus (or a group of a Modbus TCP bus's devices) until when (`amr.store.leases`)."""


from amr.store import operations_models as _operations_models  # noqa: E402, F401  (their tables join metadata)
