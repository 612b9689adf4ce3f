"""interval data: `intervals` (the value in force per meter, channel and start) and `interval_revisions`

On TimescaleDB (``[database] timescale``) `intervals` becomes a hypertable by `start` with
compression segmented by meter and channel, as `readings` is in 0002.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from amr.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _value_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("length_s", sa.Integer(), nullable=False),
        sa.Column("wh", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("flags", sa.SmallInteger(), nullable=False),
        _ts("received_at"),
    ]


def _timescale() -> bool:
    return op.get_bind().dialect.name == "postgresql" and bool(context.config.attributes.get("timescale"))


def upgrade() -> None:
    op.create_table(
        "intervals",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        _ts("start"),
        *_value_columns(),
        sa.PrimaryKeyConstraint("meter_id", "channel", "start"),
    )
    op.create_table(
        "interval_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        _ts("start"),
        *_value_columns(),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("reasons", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _ts("recorded_at"),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_interval_revisions_key", "interval_revisions", ["meter_id", "channel", "start"])
    if _timescale():
        op.execute("SELECT create_hypertable('intervals', by_range('start', INTERVAL '7 days'))")
        op.execute(
            "ALTER TABLE intervals SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'meter_id, channel', timescaledb.compress_orderby = 'start')"
        )
        op.execute("SELECT add_compression_policy('intervals', INTERVAL '90 days')")


def downgrade() -> None:
    op.drop_index("ix_interval_revisions_key", table_name="interval_revisions")
    op.drop_table("interval_revisions")
    op.drop_table("intervals")
