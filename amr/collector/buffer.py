"""The store-and-forward buffer: readings kept in a local SQLite file while the store is unreachable.

One table, ``pending``: an autoincrement id (the order readings arrived in), the meter's serial
and the reading as JSON. The JSON keeps everything the pipeline needs, exactly: integer Wh per
channel (JSON integers have no size limit in Python), ISO 8601 timestamps with offset and
microseconds, tariff, source, the original payload and any problems found before validation.
Rows leave the buffer only after the store committed them (`delete` after a successful
submit); a crash between the two sends a reading twice, and the pipeline answers the second
copy ``duplicate``: nothing is lost, nothing doubled.

Rows the store refuses for good (a `StoreError` other than unavailable, on that row alone)
move to ``quarantine`` with the error, so one bad row cannot block the rest; they are kept.

The file uses WAL with ``synchronous=FULL``: an `append` that returned survives a power cut.
Calls may come from any thread (the writer runs them in `asyncio.to_thread`), one at a time.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amr.core.domain import Channel, IncomingReading, Source
from amr.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meter TEXT NOT NULL,
    body TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    meter TEXT NOT NULL,
    body TEXT NOT NULL,
    added_at TEXT NOT NULL,
    error TEXT NOT NULL,
    moved_at TEXT NOT NULL
);
"""


def encode(reading: IncomingReading) -> str:
    """A reading as JSON text, exactly."""
    return json.dumps(
        {
            "meter": reading.meter,
            "ts": None if reading.ts is None else reading.ts.isoformat(),
            "tariff": reading.tariff,
            "values": {channel.value: value for channel, value in reading.values.items()},
            "source": reading.source.value,
            "payload": reading.payload,
            "problems": list(reading.problems),
            "received_at": None if reading.received_at is None else reading.received_at.isoformat(),
        },
        ensure_ascii=False,
        default=str,
    )


def decode(text: str) -> IncomingReading:
    """The reading `encode` wrote."""
    doc: dict[str, Any] = json.loads(text)
    return IncomingReading(
        meter=doc["meter"],
        ts=None if doc["ts"] is None else datetime.fromisoformat(doc["ts"]),
        tariff=doc["tariff"],
        values={Channel(name): value for name, value in doc["values"].items()},
        source=Source(doc["source"]),
        payload=doc["payload"],
        problems=tuple(doc["problems"]),
        received_at=None if doc["received_at"] is None else datetime.fromisoformat(doc["received_at"]),
    )


class ReadingBuffer:
    """A durable FIFO of readings in one SQLite file."""

    def __init__(self, path: Path) -> None:
        """Open (and create) the buffer at `path`; `StoreError` naming the file when it cannot be."""
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._count = int(self._conn.execute("SELECT count(*) FROM pending").fetchone()[0])
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the buffer {path}: {exc}; check [collector] buffer") from None

    def __len__(self) -> int:
        """Readings waiting in the buffer."""
        return self._count

    def append(self, readings: Sequence[IncomingReading]) -> None:
        """Add readings at the end, durably, in one transaction."""
        if not readings:
            return
        now = datetime.now(UTC).isoformat()
        rows = [(r.meter, encode(r), now) for r in readings]
        with self._lock, self._errors("write to"):
            with self._transaction():
                self._conn.executemany("INSERT INTO pending (meter, body, added_at) VALUES (?, ?, ?)", rows)
            self._count += len(rows)

    def head(self, limit: int) -> list[tuple[int, IncomingReading]]:
        """The oldest `limit` readings with their row ids."""
        with self._lock, self._errors("read"):
            rows = self._conn.execute("SELECT id, body FROM pending ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(int(row_id), decode(body)) for row_id, body in rows]

    def delete(self, ids: Sequence[int]) -> None:
        """Remove rows the store has committed."""
        if not ids:
            return
        with self._lock, self._errors("delete from"):
            with self._transaction():
                removed = 0
                for start in range(0, len(ids), 500):
                    chunk = list(ids[start : start + 500])
                    marks = ",".join("?" * len(chunk))
                    removed += self._conn.execute(f"DELETE FROM pending WHERE id IN ({marks})", chunk).rowcount
            self._count -= removed

    def quarantine(self, row_id: int, error: str) -> None:
        """Move one row the store refuses for good out of the queue, keeping it with the error."""
        now = datetime.now(UTC).isoformat()
        with self._lock, self._errors("write to"):
            with self._transaction():
                self._conn.execute(
                    "INSERT INTO quarantine (id, meter, body, added_at, error, moved_at) "
                    "SELECT id, meter, body, added_at, ?, ? FROM pending WHERE id = ?",
                    (error, now, row_id),
                )
                removed = self._conn.execute("DELETE FROM pending WHERE id = ?", (row_id,)).rowcount
            self._count -= removed

    def quarantined(self) -> int:
        """Rows kept aside because the store refused them for good."""
        with self._lock, self._errors("read"):
            return int(self._conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def close(self) -> None:
        """Close the file; never raises."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"cannot {action} the buffer {self.path}: {exc}") from exc
