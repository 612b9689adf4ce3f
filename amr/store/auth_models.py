"""Tables of the HTTP API: users and their links, tokens, API keys, throttling, idempotency,
per-account settings, readings waiting for moderation and the export sequence.

Secrets are never stored: passwords as argon2 hashes, tokens and API keys as SHA-256 of
their random value (they carry 256 bits of entropy, so a slow hash adds nothing).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from amr.store.models import Base, UTCDateTime

ROLES = ("askue", "cabinet", "dispatcher", "admin")
LINK_KINDS = ("account", "meter", "object")


class UserRow(Base):
    """A person or service account that may call the API."""

    __tablename__ = "api_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # askue | cabinet | dispatcher | admin
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserLinkRow(Base):
    """What a user may see: an account (лицевой счёт), a meter (serial) or an object (name)."""

    __tablename__ = "api_user_links"
    user_id: Mapped[int] = mapped_column(ForeignKey("api_users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # account | meter | object
    value: Mapped[str] = mapped_column(String(200), primary_key=True)

    __table_args__ = (Index("ix_api_user_links_kind_value", "kind", "value"),)


class TokenRow(Base):
    """A bearer token issued by ``POST /api/v1/auth/token``."""

    __tablename__ = "api_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("api_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKeyRow(Base):
    """A long-lived key of a service account, sent as ``X-API-Key``."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("api_users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to tell keys apart in lists
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ThrottleEventRow(Base):
    """One counted attempt (a failed login, a submission without login) of a key within a scope."""

    __tablename__ = "api_throttle_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(32))  # login | address | public
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_api_throttle_scope_key_at", "scope", "key", "at"),)


class IdempotencyRow(Base):
    """The first answer to a request sent with an ``Idempotency-Key``, per user."""

    __tablename__ = "api_idempotency"
    user_id: Mapped[int] = mapped_column(ForeignKey("api_users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0 while the first request runs
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AccountSettingRow(Base):
    """Settings an account holder chose, e.g. whether readings may be submitted without login."""

    __tablename__ = "account_settings"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_submission: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PendingReadingRow(Base):
    """A manual reading waiting for an operator (``[api] moderated_sources``); not counted until accepted."""

    __tablename__ = "pending_readings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_serial: Mapped[str] = mapped_column(String(64))
    meter_id: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    tariff: Mapped[int] = mapped_column(SmallInteger)
    a_plus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    a_minus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    r_plus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    r_minus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    submitted_by: Mapped[str] = mapped_column(String(100))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | accepted | rejected | refused
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_pending_status_submitted", "status", "submitted_at"),)


class ExportRow(Base):
    """One export file made: its number (the 80020 message number), kind, period and maker."""

    __tablename__ = "export_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
