"""Push buses (MQTT): keep the driver running and restart it with backoff when it gives up."""

from __future__ import annotations

import asyncio
import logging

from amr.collector.bus import describe
from amr.config import BusConfig
from amr.drivers.base import PushDriver, Sink

log = logging.getLogger("amr.collector")
RESTART_MAX = 60.0  # seconds between restarts at most


class PushRunner:
    """Runs one push driver until cancelled; the sink returns only once a reading is stored or buffered,
    and the driver acknowledges a message only after the sink returned."""

    def __init__(self, bus: BusConfig, driver: PushDriver, sink: Sink) -> None:
        """Deliver what `driver` receives to `sink`."""
        self.bus = bus
        self.driver = driver
        self.sink = sink
        self.restarts = 0

    async def run(self) -> None:
        """Run the driver; on an error log it (loudly once) and start again after a growing pause."""
        first = max(self.bus.retry_backoff.total_seconds(), 0.1)
        delay, failing = first, False
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.driver.run(self.sink)
                error: str = "the driver stopped"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = describe(exc)
            self.restarts += 1
            if loop.time() - started > RESTART_MAX:  # it ran well for a while: a new problem
                delay, failing = first, False
            level = logging.DEBUG if failing else logging.WARNING
            log.log(level, "bus %s (%s): %s; starting again in %g s", self.bus.name, self.bus.kind, error, delay)
            failing = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX)
