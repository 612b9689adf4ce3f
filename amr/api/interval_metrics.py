"""``/metrics``: ``amr_interval_sum_mismatches{channel}``, the sum checks that failed and are kept
(`amr.store.sum_checks`), read from the store at each scrape (the same whichever API worker answers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from amr.core.domain import CHANNELS
from amr.errors import StoreError
from amr.store import Store
from amr.store.sum_checks import mismatch_counts


class SumCheckMetrics(Collector):
    """A Prometheus collector over the ``interval_mismatches`` table."""

    def __init__(self, store: Store) -> None:
        """Read from `store`."""
        self.store = store

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "amr_interval_sum_mismatches",
            "pairs of register readings whose intervals do not add up to the register delta, by channel",
            labels=["channel"],
        )

    def describe(self) -> Iterator[Metric]:
        """The metric's name, without reading the store."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        """The current counts, every channel (0 where none); nothing when the store cannot be read."""
        family = self._family()
        try:
            counts = mismatch_counts(self.store)
        except StoreError:
            return
        for channel in CHANNELS:
            family.add_metric([channel.value], counts.get(channel.value, 0))
        yield family


def register(registry: CollectorRegistry, store: Store) -> None:
    """Add the sum-check metric to `registry` (once: a registry shared by the API and the collector)."""
    with contextlib.suppress(ValueError):  # registered by another part already
        registry.register(SumCheckMetrics(store))
