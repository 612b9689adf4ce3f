"""Counting attempts per key in a sliding window: failed logins per login and per address,
submissions without login per address. Kept in the store so that several API processes
behind a load balancer share the counts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from amr.store.auth_models import ThrottleEventRow
from amr.store.store import Store, translate_errors


class Throttle:
    """Sliding-window counters kept in table ``api_throttle_events``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def retry_after(self, scope: str, key: str, limit: int, window: timedelta, now: datetime) -> int | None:
        """Seconds until another attempt is allowed, or None when one is allowed now."""
        with translate_errors(), self.store.engine.connect() as conn:
            recent = (
                conn.execute(
                    select(ThrottleEventRow.at)
                    .where(
                        ThrottleEventRow.scope == scope,
                        ThrottleEventRow.key == key,
                        ThrottleEventRow.at > now - window,
                    )
                    .order_by(ThrottleEventRow.at.desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        if len(recent) < limit:
            return None
        wait = (recent[-1] + window - now).total_seconds()
        return max(1, math.ceil(wait))

    def hit(self, scope: str, key: str, now: datetime, window: timedelta) -> None:
        """Count one attempt; attempts of this key older than the window are forgotten."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(
                delete(ThrottleEventRow).where(
                    ThrottleEventRow.scope == scope,
                    ThrottleEventRow.key == key,
                    ThrottleEventRow.at <= now - window,
                )
            )
            conn.execute(insert(ThrottleEventRow).values(scope=scope, key=key[:200], at=now))

    def clear(self, scope: str, key: str) -> None:
        """Forget the attempts of a key (e.g. after a successful login)."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(delete(ThrottleEventRow).where(ThrottleEventRow.scope == scope, ThrottleEventRow.key == key))
