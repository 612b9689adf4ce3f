"""Tables of the HTTP API: users and their links, tokens, API keys, throttling, idempotency,
per-account settings, readings waiting for moderation and the export sequence.

Secrets are never stored: passwords as argon2 hashes, tokens and API keys as SHA-256 of
their random value (they carry 256 bits of entropy, so a slow hash adds nothing).
Tables are named and declared as in `amr.store.models`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, SmallInteger, String, Table, Text

from amr.store.models import UTCDateTime, metadata

ROLES = ("askue", "cabinet", "dispatcher", "admin")
LINK_KINDS = ("account", "meter", "object")

api_users_table = Table(
    "api_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("login", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("role", String(16), nullable=False),  # askue | cabinet | dispatcher | admin
    Column("password_hash", String(200), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""A person or service account that may call the API."""

api_user_links_table = Table(
    "api_user_links",
    metadata,
    Column("user_id", Integer, ForeignKey("api_users.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # account | meter | object
    Column("value", String(200), primary_key=True),
    Index("ix_api_user_links_kind_value", "kind", "value"),
)
"""What a user may see: an account (лицевой счёт), a meter (serial) or an object (name)."""

api_tokens_table = Table(
    "api_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("api_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
"""A bearer token issued by ``POST /api/v1/auth/token``."""

api_keys_table = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("api_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # the first characters, to tell keys apart in lists
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)
"""A long-lived key of a service account, sent as ``X-API-Key``."""

api_throttle_events_table = Table(
    "api_throttle_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(32), nullable=False),  # login | address | public
    Column("key", String(200), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_api_throttle_scope_key_at", "scope", "key", "at"),
)
"""One counted attempt (a failed login, a submission without login) of a key within a scope."""

api_idempotency_table = Table(
    "api_idempotency",
    metadata,
    Column("user_id", Integer, ForeignKey("api_users.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", SmallInteger, nullable=False, default=0),  # 0 while the first request runs
    Column("body", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)
"""The first answer to a request sent with an ``Idempotency-Key``, per user."""

account_settings_table = Table(
    "account_settings",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("public_submission", Boolean, nullable=False),
    Column("updated_by", String(100), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""Settings an account holder chose, e.g. whether readings may be submitted without login."""

pending_readings_table = Table(
    "pending_readings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meter_serial", String(64), nullable=False),
    Column("meter_id", Integer, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("tariff", SmallInteger, nullable=False),
    Column("a_plus", BigInteger, nullable=True),
    Column("a_minus", BigInteger, nullable=True),
    Column("r_plus", BigInteger, nullable=True),
    Column("r_minus", BigInteger, nullable=True),
    Column("source", String(32), nullable=False),
    Column("payload", Text, nullable=False, default="{}"),
    Column("submitted_by", String(100), nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),  # pending | accepted | rejected | refused
    Column("resolved_by", String(100), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolution", Text, nullable=True),
    Index("ix_pending_status_submitted", "status", "submitted_at"),
)
"""A manual reading waiting for an operator (``[api] moderated_sources``); not counted until accepted."""

export_log_table = Table(
    "export_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("period", String(32), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""One export file made: its number (the 80020 message number), kind, period and maker."""
