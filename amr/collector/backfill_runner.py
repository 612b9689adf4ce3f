"""The collector's back-fill turns: per polled bus, its profile meters one after another, every
``[backfill] every``, each chunk in the bus's background queue (`BusSlots.hold(background=True)`).

Serial lines carry one transaction at a time, so one loop per bus is all a line can use; buses
back-fill at once. A failing meter costs its chunk's timeout and is tried again next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from amr.collector.backfill import Backfill
from amr.collector.bus import BusWorker, describe
from amr.config import MeterConfig
from amr.drivers.profiles import ProfileReader, profile_reader
from amr.drivers.registry import PROTOCOLS

if TYPE_CHECKING:
    from amr.collector.collector import Collector

log = logging.getLogger("amr.backfill")


class BackfillRunner:
    """Back-fill of a collector's polled meters whose protocol reads profiles."""

    def __init__(self, collector: Collector, *, clock: Callable[[], datetime] | None = None) -> None:
        """Group the collector's profile meters by bus worker."""
        self.collector = collector
        self.engine = Backfill(collector.app, clock=clock)
        self.every = collector.config.backfill.every.total_seconds()
        self.buses: dict[str, tuple[BusWorker, list[MeterConfig]]] = {}
        readers: dict[str, ProfileReader | None] = {}  # bus → its driver as a profile reader, found once a bus
        for serial, worker in collector.polled.items():
            if worker.bus.name in readers:
                reader = readers[worker.bus.name]
            else:
                spec = PROTOCOLS.get(worker.bus.kind)
                readable = spec is not None and "profiles" in spec.capabilities
                reader = readers[worker.bus.name] = profile_reader(worker.driver) if readable else None
            if reader is None:
                continue
            meter = collector.meters[serial]
            if (why := reader.cannot_read(meter)) is not None:
                log.info("%s; not back-filled", why)
                continue
            self.buses.setdefault(worker.bus.name, (worker, []))[1].append(meter)

    @property
    def meters(self) -> int:
        """How many meters are back-filled."""
        return sum(len(meters) for _, meters in self.buses.values())

    async def run(self) -> None:
        """Turn after turn on every bus until cancelled."""
        await asyncio.gather(*(self._bus(worker, meters) for worker, meters in self.buses.values()))

    async def _bus(self, worker: BusWorker, meters: list[MeterConfig]) -> None:
        reader = profile_reader(worker.driver)
        assert reader is not None

        def hold() -> AbstractAsyncContextManager[None]:
            return worker.slots.hold(background=True)

        stopping = self.collector.stopping
        while not stopping.is_set():
            for meter in meters:
                if stopping.is_set():
                    return
                try:
                    report = await self.engine.run_meter(meter, reader, hold=hold, stopping=stopping)
                except Exception as exc:  # the store or the configuration: log, go on with the others
                    log.warning("meter %s: back-fill: %s", meter.serial, describe(exc))
                    continue
                if report.error:
                    log.info("meter %s: back-fill stopped at a failed chunk: %s", meter.serial, report.error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.every)
