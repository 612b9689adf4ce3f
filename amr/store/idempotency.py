"""Idempotency keys: the first answer to a request is kept per user and key and replayed.

A key is reserved before the request runs (status 0), so a concurrent retry of the same
request is told to wait instead of storing the reading twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update

from amr.store.auth_models import api_idempotency_table
from amr.store.store import Store, StoreConflict, translate_errors


@dataclass(frozen=True, slots=True)
class Kept:
    """What is kept under a key: the request's hash and, once finished, the answer."""

    request_hash: str
    status_code: int  # 0 while the first request still runs
    body: str


class Idempotency:
    """Reserve, finish, release and look up idempotency keys (table ``api_idempotency``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def reserve(self, user_id: int, key: str, request_hash: str, now: datetime, ttl: timedelta) -> Kept | None:
        """Reserve `key` for a new request and return None, or return what is already kept under it."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(delete(api_idempotency_table).where(api_idempotency_table.c.created_at < now - ttl))
        try:
            with translate_errors(), self.store.engine.begin() as conn:
                conn.execute(
                    insert(api_idempotency_table).values(
                        user_id=user_id, key=key, request_hash=request_hash, status_code=0, body="", created_at=now
                    )
                )
            return None
        except StoreConflict:
            pass
        with translate_errors(), self.store.engine.connect() as conn:
            row = (
                conn.execute(
                    select(api_idempotency_table).where(
                        api_idempotency_table.c.user_id == user_id, api_idempotency_table.c.key == key
                    )
                )
                .mappings()
                .first()
            )
        if row is None:  # released meanwhile: try once more
            return self.reserve(user_id, key, request_hash, now, ttl)
        return Kept(row["request_hash"], int(row["status_code"]), row["body"])

    def finish(self, user_id: int, key: str, status_code: int, body: str) -> None:
        """Keep the answer of the request that reserved `key`."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(
                update(api_idempotency_table)
                .where(api_idempotency_table.c.user_id == user_id, api_idempotency_table.c.key == key)
                .values(status_code=status_code, body=body)
            )

    def release(self, user_id: int, key: str) -> None:
        """Forget a reservation whose request failed unexpectedly (so a retry runs again)."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(
                delete(api_idempotency_table).where(
                    api_idempotency_table.c.user_id == user_id,
                    api_idempotency_table.c.key == key,
                    api_idempotency_table.c.status_code == 0,
                )
            )
