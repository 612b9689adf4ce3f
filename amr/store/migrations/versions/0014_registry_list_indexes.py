"""indexes on `meters.point_id` and `metering_points.object_id`: the meters of a page of metering points and
the points of a page of objects (the registry's lists, a replacement's old meter) found without reading them all

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
    op.create_index("ix_metering_points_object_id", "metering_points", ["object_id"])


def downgrade() -> None:
    op.drop_index("ix_metering_points_object_id", table_name="metering_points")
    op.drop_index("ix_meters_point_id", table_name="meters")
