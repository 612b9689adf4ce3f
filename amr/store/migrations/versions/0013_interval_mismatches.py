"""the sum check kept: `interval_mismatches`, one row per meter, channel and pair of register readings
whose intervals do not add up to the register delta within the register's resolution

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amr.store.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interval_mismatches",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("end", UTCDateTime(timezone=True), nullable=False),
        sa.Column("register_wh", sa.BigInteger(), nullable=False),
        sa.Column("intervals_wh", sa.BigInteger(), nullable=False),
        sa.Column("tolerance_wh", sa.BigInteger(), nullable=False),
        sa.Column("found_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "channel", "start"),
    )


def downgrade() -> None:
    op.drop_table("interval_mismatches")
