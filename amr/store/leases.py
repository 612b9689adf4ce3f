"""Bus leases in the database: which collector polls which bus (or group of devices), until when.

Several `amr collect` processes on one PostgreSQL share the buses through two tables:

* ``collectors``: one row a process (``host:pid:random``) with its last heartbeat;
* ``bus_leases``: one row a lease with its owner, since when it holds it and when it expires.

Every time is the database server's ``now()``, so the machines' clocks do not matter. Each
statement that takes or keeps a lease is atomic by itself: a renewal is one ``UPDATE ... WHERE
owner = me RETURNING``, an acquisition one ``UPDATE`` of rows picked ``FOR UPDATE SKIP LOCKED``
among those free or expired, so two collectors never both get a lease, and neither waits for
the other. The policy (how many to hold, when to give one back) is `amr.collector.leasing`.

SQLite has no leases: one collector owns every bus (`amr collect` on SQLite is one process).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from amr.errors import StoreError
from amr.store.store import translate_errors

PRUNE_AFTER = timedelta(days=7)  # a collector's row is forgotten this long after its last heartbeat

_ENSURE = text(
    "INSERT INTO bus_leases (lease, bus, meters) "
    "SELECT * FROM unnest(CAST(:leases AS text[]), CAST(:buses AS text[]), CAST(:meters AS int[])) "
    "ON CONFLICT (lease) DO UPDATE SET bus = excluded.bus, meters = excluded.meters "
    "WHERE bus_leases.bus IS DISTINCT FROM excluded.bus OR bus_leases.meters IS DISTINCT FROM excluded.meters"
)
_PRUNE = text("DELETE FROM collectors WHERE heartbeat_at < now() - CAST(:age AS interval)")
# The round: heartbeat, renewal of what is still ours, the other live collectors and the fewest
# leases one of them holds, in one statement. The main query does not see the rows its CTEs
# write, hence "id <> :me" and "1 +".
_ROUND = text(
    "WITH beat AS ("
    " INSERT INTO collectors (id, host, pid, started_at, heartbeat_at) VALUES (:me, :host, :pid, now(), now())"
    " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL RETURNING 1), "
    "renewed AS ("
    " UPDATE bus_leases SET expires = now() + CAST(:ttl AS interval)"
    " WHERE owner = :me AND lease = ANY(CAST(:keys AS text[])) RETURNING lease), "
    "live AS ("
    " SELECT id FROM collectors WHERE id <> :me AND stopped_at IS NULL"
    " AND heartbeat_at > now() - CAST(:ttl AS interval)), "
    "counts AS ("
    " SELECT owner, count(*) AS n FROM bus_leases"
    " WHERE lease = ANY(CAST(:keys AS text[])) AND owner <> :me AND expires > now() GROUP BY owner) "
    "SELECT 1 + (SELECT count(*) FROM live), "
    "       (SELECT min(coalesce(c.n, 0)) FROM live LEFT JOIN counts c ON c.owner = live.id), "
    "       ARRAY(SELECT lease FROM renewed), (SELECT count(*) FROM beat)"
)
_ACQUIRE = text(
    "WITH picked AS ("
    " SELECT lease, owner, expires FROM bus_leases"
    " WHERE lease = ANY(CAST(:keys AS text[])) AND (owner IS NULL OR expires < now())"
    " ORDER BY lease LIMIT :n FOR UPDATE SKIP LOCKED) "
    "UPDATE bus_leases b SET owner = :me, since = now(), expires = now() + CAST(:ttl AS interval) "
    "FROM picked WHERE b.lease = picked.lease AND (b.owner IS NULL OR b.expires < now()) "
    "RETURNING b.lease, picked.owner, picked.expires"
)
_RELEASE = text(
    "UPDATE bus_leases SET owner = NULL, since = NULL, expires = now() "
    "WHERE owner = :me AND (lease = ANY(CAST(:keys AS text[])) OR :all)"
)
_STOPPED = text("UPDATE collectors SET stopped_at = now() WHERE id = :me")


def collector_id(name: str | None = None) -> str:
    """A process's id: ``name`` (default the host name), the pid and 4 random hex digits."""
    return f"{name or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(frozen=True, slots=True)
class Taken:
    """A lease just acquired, with who held it before and when that ended (None: never held)."""

    lease: str
    previous_owner: str | None
    previous_expiry: datetime | None


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What a heartbeat round found: collectors alive (this one included), the fewest leases another
    live collector holds (None: no other), the leases renewed."""

    live: int
    fewest: int | None
    renewed: frozenset[str]


class LeaseTable:
    """The lease statements of one collector on a PostgreSQL engine; `statements` counts round trips."""

    def __init__(self, engine: Engine, me: str, ttl: timedelta) -> None:
        """`me`: this collector's id; `ttl`: how long a lease lasts after its last renewal."""
        if engine.dialect.name != "postgresql":
            raise StoreError("bus leases need PostgreSQL; on SQLite one collector owns every bus")
        self.engine = engine
        self.me = me
        self.ttl = ttl
        host, pid, _ = [*me.rsplit(":", 2), "", ""][:3]
        self.host = host
        self.pid = int(pid) if pid.isascii() and pid.isdigit() else os.getpid()
        self.statements = 0

    def _interval(self, span: timedelta) -> str:
        return f"{span.total_seconds():.6f} seconds"

    def ensure(self, leases: Mapping[str, tuple[str, int]]) -> None:
        """Create the rows of `leases` (lease → (bus, meters)) that are missing; forget long-dead collectors."""
        names = sorted(leases)
        with translate_errors(), self.engine.begin() as conn:
            conn.execute(_ENSURE, {
                "leases": names, "buses": [leases[n][0] for n in names], "meters": [leases[n][1] for n in names],
            })
            conn.execute(_PRUNE, {"age": self._interval(PRUNE_AFTER)})
        self.statements += 2

    def round(self, keys: Iterable[str]) -> RoundResult:
        """Heartbeat, renew every lease of `keys` this collector still owns, count the live collectors."""
        with translate_errors(), self.engine.begin() as conn:
            live, fewest, renewed, _ = conn.execute(_ROUND, {
                "me": self.me, "host": self.host, "pid": self.pid, "ttl": self._interval(self.ttl),
                "keys": list(keys),
            }).one()
        self.statements += 1
        return RoundResult(int(live), None if fewest is None else int(fewest), frozenset(renewed))

    def acquire(self, keys: Iterable[str], n: int) -> list[Taken]:
        """Take up to `n` of `keys` that are free or expired; each taken by exactly one collector."""
        if n <= 0:
            return []
        with translate_errors(), self.engine.begin() as conn:
            rows = conn.execute(_ACQUIRE, {
                "me": self.me, "keys": list(keys), "n": n, "ttl": self._interval(self.ttl),
            }).all()
        self.statements += 1
        return [Taken(lease, owner, _utc(expires)) for lease, owner, expires in rows]

    def release(self, keys: Iterable[str], *, stopping: bool = False) -> None:
        """Give `keys` back (free at once for the others); `stopping`: this collector is leaving, every
        lease it owns is given back."""
        with translate_errors(), self.engine.begin() as conn:
            conn.execute(_RELEASE, {"me": self.me, "keys": list(keys), "all": stopping})
            if stopping:
                conn.execute(_STOPPED, {"me": self.me})
        self.statements += 2 if stopping else 1


def _utc(value: datetime | None) -> datetime | None:
    """psycopg gives TIMESTAMPTZ as an aware datetime in the session's zone: as UTC."""
    return value.astimezone(UTC) if value is not None else None


@dataclass(frozen=True, slots=True)
class LeaseState:
    """One lease as `amr collect --status` shows it."""

    lease: str
    bus: str
    meters: int
    owner: str | None
    since: datetime | None
    expires: datetime | None
    held: bool  # owned and not expired


@dataclass(frozen=True, slots=True)
class CollectorState:
    """One collector as `amr collect --status` shows it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    alive: bool  # a heartbeat within the TTL and not stopped
    leases: int


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """Who holds what, seen from the database at `now`."""

    now: datetime
    leases: list[LeaseState]
    collectors: list[CollectorState]


def load_status(conn: Connection, ttl: timedelta) -> LeaseStatus:
    """Every lease and every collector known, with the server's time."""
    with translate_errors():
        now = _utc(conn.execute(text("SELECT now()")).scalar_one())
        assert now is not None
        leases = [
            LeaseState(lease, bus, meters, owner, _utc(since), _utc(expires),
                       owner is not None and expires is not None and _utc(expires) > now)  # type: ignore[operator]
            for lease, bus, meters, owner, since, expires in conn.execute(
                text("SELECT lease, bus, meters, owner, since, expires FROM bus_leases ORDER BY bus, lease")
            )
        ]
        held: dict[str, int] = {}
        for state in leases:
            if state.held and state.owner is not None:
                held[state.owner] = held.get(state.owner, 0) + 1
        collectors = [
            CollectorState(
                cid, host, pid, _utc(started), _utc(beat), _utc(stopped),  # type: ignore[arg-type]
                stopped is None and _utc(beat) > now - ttl, held.get(cid, 0),  # type: ignore[operator]
            )
            for cid, host, pid, started, beat, stopped in conn.execute(
                text("SELECT id, host, pid, started_at, heartbeat_at, stopped_at FROM collectors "
                     "ORDER BY heartbeat_at DESC, id")
            )
        ]
    return LeaseStatus(now, leases, collectors)
