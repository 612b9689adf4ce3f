"""Turns on a bus: at most `size` transactions at once, retries served before first attempts,
background work (profile back-fill) only when neither waits.

A retry has already waited its timeout and its backoff; queueing it again behind every first
attempt of a sweep would make a silent meter's poll last the whole sweep plus its retries.
Within each class, first come first served.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class BusSlots:
    """A semaphore of `size` slots with three queues: retries, then first attempts, then background work."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a bus has at least one slot")
        self.size = size
        self._free = size
        self._retries: deque[asyncio.Future[None]] = deque()
        self._firsts: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Transactions waiting for a slot."""
        return len(self._retries) + len(self._firsts) + len(self._background)

    @asynccontextmanager
    async def hold(self, retry: bool = False, *, background: bool = False) -> AsyncIterator[None]:
        """Hold a slot for the body; a `retry` goes before every first attempt waiting, `background`
        work after everything else."""
        await self._acquire(retry, background)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, retry: bool, background: bool = False) -> None:
        if self._free and not self.waiting:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._background if background else self._retries if retry else self._firsts
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot was handed over as the wait was cancelled: pass it on
            elif turn in queue:  # a release may already have dropped the cancelled turn
                queue.remove(turn)
            raise

    def _release(self) -> None:
        for queue in (self._retries, self._firsts, self._background):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # the slot goes straight to the next in line
                    return
        self._free += 1
