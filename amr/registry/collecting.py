"""The collector over the registry: a change to the registry's buses or meters takes effect in seconds.

`collect` runs a `Collector` of the buses and meters the registry holds; when the registry changes
(`RegistryWatch`) that collector stops gracefully (polls under way finish, the writer is flushed)
and one of the new registry starts in its place, in the same process: its buffer, store and
schedules carry on, nothing is restarted by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from amr.app import App
from amr.collector.collector import Collector
from amr.registry.watch import RegistryWatch

log = logging.getLogger("amr.registry")


async def collect(
    app: App, stop: asyncio.Event, first: Collector | None = None, started: Callable[[Collector], None] | None = None
) -> None:
    """Collect the registry's meters until `stop` is set, taking every change to the registry. `first`:
    the collector to start with (built by the caller, e.g. with its listeners); `started` is called
    with each collector built here for a new version of the registry, before it starts."""
    changed = asyncio.Event()

    async def note() -> None:
        changed.set()

    watcher = asyncio.create_task(RegistryWatch(app, note).run(stop), name="amr-registry-watch")
    try:
        while not stop.is_set():
            if first is not None:
                collector, first = first, None
            else:
                collector = Collector(app)
                if started is not None:
                    started(collector)
            await collector.start()
            try:
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(changed.wait())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for waiting in waits:
                    waiting.cancel()
            finally:
                changed.clear()  # a change while this one stops makes the next one stop at once
                await collector.stop()
            if not stop.is_set():
                log.info("the collector takes the registry's version %s", app.registry_version)
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
