"""Following the registry in a running process: a change reaches it within seconds, without a restart.

Every registry write bumps ``registry_state.version`` (`amr.registry.stored.bump`). A watch
compares it with the version its `App` loaded and, when it moved, loads the registry again
(`App.refresh`) and calls back. On PostgreSQL it also LISTENs on ``amr_registry`` (the writer
NOTIFYs at commit), so a change is taken at once; the comparison every `interval` remains the
net under it (a notification lost with a dropped connection) and the only way on SQLite, where
it is one read of one row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from amr.app import App
from amr.errors import AmrError
from amr.registry.stored import CHANNEL

log = logging.getLogger("amr.registry")
Changed = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


class RegistryWatch:
    """Keeps `app`'s buses and meters those of the registry; `on_change` runs after each reload."""

    def __init__(self, app: App, on_change: Changed = _nothing, interval: float | None = None) -> None:
        self.app = app
        self.on_change = on_change
        self.interval = interval if interval is not None else app.config.registry.watch_interval.total_seconds()
        self.wake = asyncio.Event()
        self.reloads = 0
        self.seen = app.registry_version  # the version `on_change` last ran for

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the registry until `stop` is set."""
        listener = None
        if self.app.store.engine.dialect.name == "postgresql":
            listener = asyncio.create_task(self._listen(stop), name="amr-registry-listen")
        try:
            while not stop.is_set():
                await self.check()
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
                await asyncio.wait(waits, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
                for waiting in waits:
                    waiting.cancel()
                self.wake.clear()
        finally:
            if listener is not None:
                listener.cancel()
                with suppress(asyncio.CancelledError):
                    await listener

    async def check(self) -> bool:
        """Reload when the registry's version moved; True when it did (then `on_change` has run). Another
        watch of the same `App` (the API's and the collector's in `amr run`) may have reloaded it: the
        change still counts here."""
        try:
            await asyncio.to_thread(self.app.refresh)
        except AmrError as exc:  # the store away, or a stored entry refused: keep what runs, say why
            log.warning("the meter registry was not reloaded: %s", exc)
            return False
        changed = self.app.registry_version != self.seen
        if changed:
            self.seen = self.app.registry_version
            self.reloads += 1
            log.info("meter registry version %s: %d meter(s), %d bus(es)", self.app.registry_version,
                     len(self.app.meters), len(self.app.config.buses))
            await self.on_change()
        return changed

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN on the registry's channel and wake the loop on each notification; reconnect after a loss."""
        import psycopg

        url = self.app.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                conn: Any = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.wake.set()  # anything missed while not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except psycopg.Error as exc:
                log.debug("registry notifications lost (%s); listening again", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
