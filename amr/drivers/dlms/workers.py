"""The threads a DLMS bus polls its meters in: a pool of its own, as large as the bus reads at once.

The DLMS session is blocking (sockets with deadlines, pyserial); `asyncio.to_thread` would run
every poll in the event loop's default executor, min(32, CPUs + 4) threads (6 on two cores),
which would cap a ``dlms-tcp`` bus with ``concurrency = 500`` at 6 meters at once. Each bus has
its own pool instead: ``concurrency`` threads for a TCP bus, one for a serial line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Workers:
    """A bounded thread pool, started on first use and shut down by `close` (restarted if used again)."""

    def __init__(self, size: int, name: str) -> None:
        """Up to `size` threads named ``dlms-<name>``."""
        self.size, self.name = size, name
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """`work(*args)` in one of the pool's threads."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=f"dlms-{self.name}")
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    def close(self) -> None:
        """Stop the pool: polls running finish on their own deadlines, queued ones are dropped."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
