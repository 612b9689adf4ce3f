"""meter events and clock checks: the normalised event journal and the last clock check per meter

``meter_events`` keeps every event once (unique meter, time, code) with its raw record and the
delivery state of its alarm; ``meter_clock`` the last drift measured per meter, its state and
the last correction; ``clock_requests`` a dispatcher's request to correct a meter's clock until the
collector that polls it has done it.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import amr.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = amr.store.models.UTCDateTime(timezone=True)
    op.create_table(
        "meter_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("ts", utc, nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("recorded_at", utc, nullable=False),
        sa.Column("alarm", sa.String(length=10), nullable=True),
        sa.Column("alarm_attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("meter_id", "ts", "code", "detail", name="uq_meter_events_key"),
    )
    op.create_index("ix_meter_events_alarm", "meter_events", ["alarm"])
    op.create_table(
        "meter_clock",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", utc, nullable=False),
        sa.Column("meter_time", utc, nullable=True),
        sa.Column("drift_ms", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("corrected_at", utc, nullable=True),
        sa.Column("correction_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"]),
        sa.PrimaryKeyConstraint("meter_id"),
    )
    op.create_table(
        "clock_requests",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", utc, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"]),
        sa.PrimaryKeyConstraint("meter_id"),
    )


def downgrade() -> None:
    op.drop_table("clock_requests")
    op.drop_table("meter_clock")
    op.drop_index("ix_meter_events_alarm", table_name="meter_events")
    op.drop_table("meter_events")
