"""back-fill progress: `backfill_state`, per meter and channel how far the meter's profile has been read

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amr.store.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill_state",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("read_until", UTCDateTime(timezone=True), nullable=False),
        sa.Column("lost_from", UTCDateTime(timezone=True), nullable=True),
        sa.Column("lost_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("lost_total_s", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt", UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "channel"),
    )


def downgrade() -> None:
    op.drop_table("backfill_state")
