"""Recent polls per meter, kept in memory for the dashboard's meter page.

The collector calls every ``on_poll`` listener after a poll; `PollLog.attach(collector)` adds one
that keeps the last `size` results of each meter (`PollResult.as_dict`, JSON-ready). Push meters
(MQTT) report through the writer, not as polls, so their page shows readings instead.

    log = PollLog()
    log.attach(collector)
    api.state.poll_log = log    # the dashboard route reads it
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

KEEP = 30


class _Result(Protocol):
    serial: str

    def as_dict(self) -> dict[str, Any]: ...


class _Collector(Protocol):
    on_poll: list[Callable[[Any], None]]


class PollLog:
    """The last polls of every meter, newest last; safe to read from the API's threads."""

    def __init__(self, size: int = KEEP) -> None:
        """Keep `size` polls a meter."""
        self.size = size
        self._polls: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def attach(self, collector: _Collector) -> PollLog:
        """Listen to `collector`'s polls."""
        collector.on_poll.append(self.add)
        return self

    def add(self, result: _Result) -> None:
        """Keep one poll result."""
        entry = result.as_dict()
        polled_at = entry.get("polled_at")
        entry["polled_at"] = datetime.fromisoformat(polled_at) if isinstance(polled_at, str) else polled_at
        with self._lock:
            self._polls.setdefault(result.serial, deque(maxlen=self.size)).append(entry)

    def recent(self, serial: str, limit: int = 15) -> list[dict[str, Any]]:
        """The newest polls of a meter, newest first, with the fields `PollEntry` takes."""
        keys = ("polled_at", "ok", "seconds", "attempts", "error", "error_kind", "error_code", "status", "values",
                "errors", "accepted", "duplicate", "rejected")
        with self._lock:
            found = list(self._polls.get(serial, ()))
        return [{k: e.get(k) for k in keys if e.get(k) is not None} for e in reversed(found[-limit:])]


__all__ = ["PollLog"]
