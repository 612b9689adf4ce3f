"""Series locks: every writer judges and writes a series (meter, tariff) while holding its lock.

On PostgreSQL the locks are transaction-level advisory locks, released at commit or
rollback, taken in one statement in ascending key order (so two writers never wait for
each other in a cycle) before the context is loaded. On SQLite the write transaction
begins IMMEDIATE instead: one writer at a time is SQLite's nature.

The lock table of PostgreSQL is small (``max_locks_per_transaction`` × connections for
the whole server), so a transaction never takes one lock per series without bound.
Locks are taken at three granularities, coarser first (multi-granularity locking):

====================  ===================================  =========================
level                 key                                   taken
====================  ===================================  =========================
region                meter id // 4096                      shared, or exclusive
block                 meter id // 64                        shared, or exclusive
series                (meter id, tariff)                    exclusive
====================  ===================================  =========================

A transaction of up to `SERIES_MAX` series locks each series exclusively and its block
and region shared: writers of different meters never wait for each other. A larger one
(a bulk import) locks its blocks exclusively (its regions shared), and one spanning more
than `BLOCKS_MAX` blocks locks its regions exclusively. Meter ids are given in the order
of the configuration, so a large batch usually covers a few blocks; other writers of
meters in those blocks wait for that one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import Connection, text

SeriesKey = tuple[int, int]

SERIES_MAX = 512
BLOCKS_MAX = 512
BLOCK_BITS = 6
REGION_BITS = 12
_NAMESPACE = 0x414D << 48  # keeps these keys apart from any other advisory lock on the server
_REGION, _BLOCK, _SERIES = (1 << 44, 2 << 44, 3 << 44)  # ascending: coarser levels are locked first

_LOCK = text(
    "SELECT CASE WHEN u.s THEN pg_advisory_xact_lock_shared(u.k) ELSE pg_advisory_xact_lock(u.k) END "
    "FROM unnest(CAST(:k AS bigint[]), CAST(:s AS boolean[])) AS u(k, s) ORDER BY u.k"
)
"""Locks in ascending key order: PostgreSQL evaluates a volatile target list after the sort
(the plan is a Result over a Sort), and the keys are sorted before they are sent as well."""


def region_key(meter_id: int) -> int:
    """The advisory lock key of the region holding `meter_id`."""
    return _NAMESPACE | _REGION | (meter_id >> REGION_BITS)


def block_key(meter_id: int) -> int:
    """The advisory lock key of the block holding `meter_id`."""
    return _NAMESPACE | _BLOCK | (meter_id >> BLOCK_BITS)


def series_key(meter_id: int, tariff: int) -> int:
    """The advisory lock key of one series."""
    return _NAMESPACE | _SERIES | (meter_id << 8) | (tariff & 0xFF)


def plan(series: Collection[SeriesKey]) -> dict[int, bool]:
    """The advisory locks for `series`: key → shared (True) or exclusive (False)."""
    meters = {m for m, _ in series}
    wanted: dict[int, bool] = {}
    if len(series) <= SERIES_MAX:
        wanted.update(dict.fromkeys((region_key(m) for m in meters), True))
        wanted.update(dict.fromkeys((block_key(m) for m in meters), True))
        wanted.update(dict.fromkeys((series_key(m, t) for m, t in series), False))
        return wanted
    blocks = {block_key(m) for m in meters}
    if len(blocks) <= BLOCKS_MAX:
        wanted.update(dict.fromkeys((region_key(m) for m in meters), True))
        wanted.update(dict.fromkeys(blocks, False))
        return wanted
    wanted.update(dict.fromkeys((region_key(m) for m in meters), False))
    return wanted


class SeriesLocks:
    """The series locks one transaction holds; `take` adds more (PostgreSQL), SQLite needs none."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.enabled = conn.dialect.name == "postgresql"
        self.held: dict[int, bool] = {}

    def take(self, series: Iterable[SeriesKey]) -> None:
        """Lock `series` (blocking until other writers of them commit or roll back)."""
        if not self.enabled:
            return
        wanted = plan(set(series))
        new = {k: s for k, s in wanted.items() if k not in self.held or (self.held[k] and not s)}
        if not new:
            return
        keys = sorted(new)
        self.conn.execute(_LOCK, {"k": keys, "s": [new[k] for k in keys]})
        self.held.update(new)
