"""API users, links, tokens, API keys, throttling, idempotency, account settings, moderation, exports

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amr.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login"),
    )
    op.create_table(
        "api_user_links",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["api_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "kind", "value"),
    )
    op.create_index("ix_api_user_links_kind_value", "api_user_links", ["kind", "value"])
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        sa.ForeignKeyConstraint(["user_id"], ["api_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["api_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "api_throttle_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        _ts("at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_throttle_scope_key_at", "api_throttle_events", ["scope", "key", "at"])
    op.create_table(
        "api_idempotency",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["user_id"], ["api_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "key"),
    )
    op.create_index("ix_api_idempotency_created_at", "api_idempotency", ["created_at"])
    op.create_table(
        "account_settings",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("public_submission", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("account"),
    )
    op.create_table(
        "pending_readings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meter_serial", sa.String(length=64), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        _ts("ts"),
        sa.Column("tariff", sa.SmallInteger(), nullable=False),
        sa.Column("a_plus", sa.BigInteger(), nullable=True),
        sa.Column("a_minus", sa.BigInteger(), nullable=True),
        sa.Column("r_plus", sa.BigInteger(), nullable=True),
        sa.Column("r_minus", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("submitted_by", sa.String(length=100), nullable=False),
        _ts("submitted_at"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        _ts("resolved_at", nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pending_status_submitted", "pending_readings", ["status", "submitted_at"])
    op.create_table(
        "export_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("export_log")
    op.drop_index("ix_pending_status_submitted", table_name="pending_readings")
    op.drop_table("pending_readings")
    op.drop_table("account_settings")
    op.drop_index("ix_api_idempotency_created_at", table_name="api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_index("ix_api_throttle_scope_key_at", table_name="api_throttle_events")
    op.drop_table("api_throttle_events")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index("ix_api_user_links_kind_value", table_name="api_user_links")
    op.drop_table("api_user_links")
    op.drop_table("api_users")
