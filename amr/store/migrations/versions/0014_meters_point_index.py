"""an index on `meters.point_id`: the meters of a page of metering points (the registry's list of points,
a replacement's old meter) found without reading every meter

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_meters_point_id", "meters", ["point_id"])


def downgrade() -> None:
    op.drop_index("ix_meters_point_id", table_name="meters")
