"""What every simulated server shares: the tasks serving its connections, a clean stop, ``async with``."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, Protocol, Self

LOOPBACK = "127.0.0.1"  # the only address a simulator listens on


class Closable(Protocol):
    """A connection `Connections.close` drops (a stream writer, a simulated line's link)."""

    def close(self) -> None: ...


class Connections:
    """The tasks serving a server's connections and what each connection writes to."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.open: set[Closable] = set()

    @contextlib.contextmanager
    def serving(self, connection: Closable) -> Iterator[None]:
        """Count the current task and its `connection` as the server's while the body runs."""
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.open.add(connection)
        try:
            yield
        finally:
            self.tasks.discard(task)
            self.open.discard(connection)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` as a task of the server (ended by `close`)."""
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self, server: asyncio.Server | None) -> None:
        """Stop listening, drop every connection and end every task serving one."""
        if server is not None:
            server.close()
        for connection in list(self.open):
            connection.close()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()


class Service(abc.ABC):
    """Started by `start`, ended by `stop`; ``async with`` does both."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Start serving."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop serving and drop every connection."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
