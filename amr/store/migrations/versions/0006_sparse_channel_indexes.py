"""partial indexes for the sparse channels: the last A- or R- of a series is found without a scan

The context of a batch asks, per series and channel, for the nearest reading before (and after)
that has the channel. A+ and R+ are in nearly every reading, so the primary key finds them at
once; A- and R- are absent from every reading of most consumers' meters, and without these
indexes that question walked the series' whole history on every batch. Rows without the
channel are not in its index, so the indexes cost writes only where the channel is read.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SPARSE = ("a_minus", "r_minus")


def upgrade() -> None:
    for channel in SPARSE:
        op.create_index(
            f"ix_readings_{channel}_present",
            "readings",
            ["meter_id", "tariff", "ts"],
            postgresql_where=sa.text(f"{channel} IS NOT NULL"),
            sqlite_where=sa.text(f"{channel} IS NOT NULL"),
        )


def downgrade() -> None:
    for channel in SPARSE:
        op.drop_index(f"ix_readings_{channel}_present", table_name="readings")
