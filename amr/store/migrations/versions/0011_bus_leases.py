"""bus leases: collectors on several machines share the buses through leases kept here

``collectors`` holds each `amr collect` process and its last heartbeat; ``bus_leases`` one row a
lease (a bus, or a group of a Modbus TCP bus's devices) with its owner and expiry. See
`amr.store.leases`.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import amr.store.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collectors",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", amr.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", amr.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", amr.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "bus_leases",
        sa.Column("lease", sa.String(length=300), nullable=False),
        sa.Column("bus", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("since", amr.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires", amr.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("meters", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("lease"),
    )
    op.create_index("ix_bus_leases_owner", "bus_leases", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_bus_leases_owner", table_name="bus_leases")
    op.drop_table("bus_leases")
    op.drop_table("collectors")
