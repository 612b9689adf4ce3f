"""``/metrics`` counters of meter events and clock states, read from the store at each scrape.

``amr_meter_events_total{code, severity}``: events stored (journals and the head-end's own);
``amr_meter_clocks{state}``: meters by the state of their last clock check. Being read from the
table, they are the same whichever API worker answers and survive restarts.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from amr.errors import StoreError
from amr.store import Store
from amr.store.events import event_counts, load_clock


class EventMetrics(Collector):
    """A Prometheus collector over the ``meter_events`` and ``meter_clock`` tables."""

    def __init__(self, store: Store) -> None:
        """Read from `store`."""
        self.store = store

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily]:
        events = CounterMetricFamily("amr_meter_events", "meter events stored, by code and severity",
                                     labels=["code", "severity"])
        clocks = GaugeMetricFamily("amr_meter_clocks", "meters by the state of their last clock check",
                                   labels=["state"])
        return events, clocks

    def describe(self) -> Iterator[Metric]:
        """The metrics' names, without reading the store (registration checks names with it)."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """The current counts (nothing when the store cannot be read)."""
        events, clocks = self._families()
        try:
            for (code, severity), count in sorted(event_counts(self.store).items()):
                events.add_metric([code, severity], count)
            for state, count in sorted(Counter(c.state for c in load_clock(self.store).values()).items()):
                clocks.add_metric([state], count)
        except StoreError:
            return
        yield events
        yield clocks


def register(registry: CollectorRegistry, store: Store) -> None:
    """Add the event metrics to `registry` (once: a registry shared by the API and the collector)."""
    with contextlib.suppress(ValueError):  # "Duplicated timeseries": registered by another part already
        registry.register(EventMetrics(store))


__all__ = ["EventMetrics", "register"]
