"""The collector over the registry: a change to the registry's buses or meters takes effect in seconds.

`collect` runs a `Collector` of the buses and meters the registry holds; when the registry changes
(`RegistryWatch`) in how meters are reached (`field_side`: buses, addresses, schedules, protocol
settings, meters added or removed), that collector stops gracefully (polls under way finish, the
writer is flushed) and one of the new registry starts in its place, in the same process: its
buffer, store and schedules carry on, nothing is restarted by hand. Any other change (a name, an
account, a ratio, a service date) needs no new collector: each poll reads the meter as the app
holds it now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from amr.app import App
from amr.collector.collector import Collector
from amr.config import Config
from amr.registry.watch import RegistryWatch

log = logging.getLogger("amr.registry")


def field_side(config: Config) -> tuple[Any, ...]:
    """What a collector is built from: the buses, how each collected meter is reached and polled, and
    the collector's settings. Two configurations alike in this need no new collector."""
    meters = tuple(
        (m.serial, m.bus, m.address, m.schedule, m.timeout, m.retries, m.settings)
        for m in config.meters
        if m.bus is not None
    )
    return tuple(config.buses), meters, config.collector


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
            built = app.config  # compared by `field_side` when the registry changes, not at each start
            await collector.start()
            try:
                while not stop.is_set():
                    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(changed.wait())]
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    for waiting in waits:
                        waiting.cancel()
                    changed.clear()  # a change while this one stops makes the next one stop at once
                    if stop.is_set() or field_side(app.config) != field_side(built):
                        break
                    # names, accounts, ratios, dates: read from the app's meters at each poll, no restart
                    log.info("registry version %s: the collected meters are reached as before; collecting on",
                             app.registry_version)
            finally:
                await collector.stop()
            if not stop.is_set():
                log.info("the collector takes the registry's version %s", app.registry_version)
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
