"""meter operations: relay commands, power-quality samples and quality events

``relay_commands`` is the queue of relay commands with their outcome (claimed by a collector with a
lease: ``claimed_by``, ``claimed_until``); ``quality_samples`` holds instantaneous values, a column a
quantity, apart from readings; ``quality_events`` a quantity outside its limit, once per sample.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

QUANTITIES = (
    "voltage_l1", "voltage_l2", "voltage_l3",
    "current_l1", "current_l2", "current_l3",
    "power_l1", "power_l2", "power_l3", "power_total",
    "power_factor_l1", "power_factor_l2", "power_factor_l3", "power_factor_total",
    "frequency",
)


def _when(name: str, nullable: bool = False) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "relay_commands",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("meter_id", sa.Integer(), sa.ForeignKey("meters.id"), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        _when("requested_at"),
        _when("deadline"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_try_at"),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        _when("claimed_until", nullable=True),
        _when("finished_at", nullable=True),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("supplied", sa.Boolean(), nullable=True),
        sa.Column("acted", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
    )
    op.create_index("ix_relay_commands_due", "relay_commands", ["status", "next_try_at"])
    op.create_index("ix_relay_commands_meter", "relay_commands", ["meter_id", "id"])
    op.create_table(
        "quality_samples",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        _when("ts"),
        _when("received_at"),
        *(sa.Column(name, sa.Float(), nullable=True) for name in QUANTITIES),
        sa.PrimaryKeyConstraint("meter_id", "ts"),
    )
    op.create_table(
        "quality_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        _when("ts"),
        sa.Column("quantity", sa.String(32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        _when("received_at"),
        sa.UniqueConstraint("meter_id", "ts", "quantity", name="uq_quality_events_sample"),
    )


def downgrade() -> None:
    op.drop_table("quality_events")
    op.drop_table("quality_samples")
    op.drop_index("ix_relay_commands_meter", table_name="relay_commands")
    op.drop_index("ix_relay_commands_due", table_name="relay_commands")
    op.drop_table("relay_commands")
