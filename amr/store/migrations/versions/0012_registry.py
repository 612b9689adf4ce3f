"""meter registry in the database: buses with protocol settings, meters' field side, a change counter

Meters, points, objects, accounts and ratio versions already have their tables (0001, mirrored
from the TOML). The registry adds what the collector needs to reach a meter: the buses (common
keys and the protocol's own settings as JSON, validated by the bus kind's settings model through
`amr.drivers.registry` whenever written or read), each meter's bus, address, schedule, timeout,
retries and protocol settings, and `retired_at` for a meter taken out of the registry (its rows
and readings are kept). `registry_state.version` counts changes: readers compare it cheaply, and
on PostgreSQL every change also sends NOTIFY amr_registry.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amr.store.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _meter_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("bus_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("schedule", sa.Text(), nullable=True),
        sa.Column("timeout_ms", sa.Integer(), nullable=True),
        sa.Column("retries", sa.SmallInteger(), nullable=True),
        sa.Column("settings", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("retired_at", UTCDateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "buses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("timeout_ms", sa.Integer(), nullable=True),
        sa.Column("retries", sa.SmallInteger(), nullable=True),
        sa.Column("retry_backoff_ms", sa.Integer(), nullable=True),
        sa.Column("schedule", sa.Text(), nullable=True),
        sa.Column("settings", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    # plain ADD COLUMN (no batch copy on SQLite: it would drop the triggers 0005 put on `meters`)
    for column in _meter_columns():
        op.add_column("meters", column)
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key("fk_meters_bus_id", "meters", "buses", ["bus_id"], ["id"])
    op.create_index("ix_meters_bus_id", "meters", ["bus_id"])
    op.create_index("ix_meters_name", "meters", ["name"])
    op.create_table(
        "registry_state",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO registry_state (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("registry_state")
    op.drop_index("ix_meters_name", "meters")
    op.drop_index("ix_meters_bus_id", "meters")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("fk_meters_bus_id", "meters", type_="foreignkey")
    for column in _meter_columns():
        op.drop_column("meters", column.name)
    op.drop_table("buses")
