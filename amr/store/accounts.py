"""Per-account settings chosen by the account holder (table ``account_settings``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from amr.store.audit_trail import audit
from amr.store.auth_models import account_settings_table
from amr.store.store import Store, translate_errors


class AccountSettings:
    """Whether readings may be submitted for an account without login."""

    def __init__(self, store: Store, default_public: bool) -> None:
        self.store = store
        self.default_public = default_public

    def public_submission(self, account: str) -> bool:
        """The holder's choice, or the configured default (``[api] public_submission``)."""
        with translate_errors(), self.store.engine.connect() as conn:
            found = conn.execute(
                select(account_settings_table.c.public_submission).where(account_settings_table.c.account == account)
            ).scalar_one_or_none()
        return self.default_public if found is None else bool(found)

    def set_public_submission(self, account: str, allowed: bool, actor: str, now: datetime) -> None:
        """Record the holder's choice, audited."""
        values = {"account": account, "public_submission": allowed, "updated_by": actor, "updated_at": now}
        with translate_errors(), self.store.engine.begin() as conn:
            maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = (
                maker(account_settings_table).values(**values).on_conflict_do_nothing(index_elements=["account"])
            )
            if not conn.execute(statement).rowcount:
                conn.execute(
                    update(account_settings_table).where(account_settings_table.c.account == account).values(**values)
                )
            audit(
                conn,
                now,
                actor,
                "account_settings",
                f"account/{account}",
                "allowed" if allowed else "forbidden",
                {"public_submission": allowed},
            )
