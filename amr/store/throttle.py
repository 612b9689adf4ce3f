"""Counting attempts per key in a sliding window: failed logins per login and per address,
submissions without login per address. Kept in the store so that several API processes
behind a load balancer share the counts.

An attempt takes its slot (`Throttle.reserve`) before it is judged, in one atomic step that
counts and records: on PostgreSQL under a transaction advisory lock per (scope, key), on
SQLite in a ``BEGIN IMMEDIATE`` transaction (one writer at a time). So at most ``limit``
attempts of a key are ever judged per window, however many workers and processes answer.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, text

from amr.store.auth_models import api_throttle_events_table
from amr.store.store import Store, translate_errors

KEY_LENGTH = 200  # the width of api_throttle_events.key


@dataclass(frozen=True, slots=True)
class Slot:
    """The answer of `Throttle.reserve`: the seconds to wait (no slot taken), or the taken slots' ids."""

    wait: int | None
    ids: tuple[int, ...] = ()

    @property
    def granted(self) -> bool:
        """True when the attempt may go on."""
        return self.wait is None


def _lock_id(scope: str, key: str) -> int:
    """A signed 64-bit advisory lock id for (scope, key)."""
    digest = hashlib.sha256(f"amr-throttle|{scope}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Throttle:
    """Sliding-window counters kept in table ``api_throttle_events``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def reserve(
        self, keys: Sequence[tuple[str, str]], limit: int, window: timedelta, now: datetime
    ) -> Slot:
        """Take one slot of every (scope, key) in `keys` at once, or none when any is used up.

        Counting and recording happen in one transaction that holds every key's lock, so two
        attempts never both take the last slot. Attempts older than the window are forgotten.
        """
        wanted = sorted({(scope, key[:KEY_LENGTH]) for scope, key in keys})
        with translate_errors(), self.store.engine.connect() as conn:
            self._lock(conn, wanted)
            waits = [self._wait(conn, scope, key, limit, window, now) for scope, key in wanted]
            wait = max((w for w in waits if w is not None), default=None)
            if wait is not None:
                conn.rollback()
                return Slot(wait)
            ids = []
            for scope, key in wanted:
                conn.execute(
                    delete(api_throttle_events_table).where(
                        api_throttle_events_table.c.scope == scope,
                        api_throttle_events_table.c.key == key,
                        api_throttle_events_table.c.at <= now - window,
                    )
                )
                found = conn.execute(
                    insert(api_throttle_events_table)
                    .values(scope=scope, key=key, at=now)
                    .returning(api_throttle_events_table.c.id)
                )
                ids.append(int(found.scalar_one()))
            conn.commit()
        return Slot(None, tuple(ids))

    def refund(self, slot: Slot) -> None:
        """Give back the slots of an attempt that turned out not to count (e.g. a right password)."""
        if not slot.ids:
            return
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(delete(api_throttle_events_table).where(api_throttle_events_table.c.id.in_(slot.ids)))

    def clear(self, scope: str, key: str) -> None:
        """Forget the attempts of a key (e.g. after a successful login)."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(
                delete(api_throttle_events_table).where(
                    api_throttle_events_table.c.scope == scope, api_throttle_events_table.c.key == key[:KEY_LENGTH]
                )
            )

    @staticmethod
    def _lock(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
        if conn.dialect.name == "sqlite":
            # the write lock at once: a second process waits here (busy_timeout) instead of counting
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        for scope, key in keys:  # sorted by the caller, so two attempts never wait on each other
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _lock_id(scope, key)})

    @staticmethod
    def _wait(conn: Connection, scope: str, key: str, limit: int, window: timedelta, now: datetime) -> int | None:
        recent: Sequence[datetime] = (
            conn.execute(
                select(api_throttle_events_table.c.at)
                .where(
                    api_throttle_events_table.c.scope == scope,
                    api_throttle_events_table.c.key == key,
                    api_throttle_events_table.c.at > now - window,
                )
                .order_by(api_throttle_events_table.c.at.desc())
                .limit(limit)
            )
            .scalars()
            .all()
        )
        if len(recent) < limit:
            return None
        return max(1, math.ceil((recent[-1] + window - now).total_seconds()))
