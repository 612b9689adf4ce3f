"""Derivation of intervals from register readings run against the store (`amr.validation.derived`)."""

from __future__ import annotations

from datetime import datetime

from amr.config import Config, IntervalsConfig
from amr.core.intervals import DEFAULT_INTERVAL
from amr.core.meters import Meter
from amr.store.intervals import IntervalWriteResult
from amr.store.store import Store
from amr.validation.derived import derive
from amr.validation.intervals import IntervalRules


def derive_meter(
    store: Store,
    meter: Meter,
    config: IntervalsConfig,
    start: datetime,
    end: datetime,
    now: datetime,
    rules: IntervalRules | None = None,
) -> IntervalWriteResult:
    """Derive `meter`'s intervals starting in [start, end) from its stored register readings and store
    them (idempotent: a value derived again is a duplicate; a profile value stored wins)."""
    tolerance = config.edge_tolerance
    readings = store.readings([meter.id], start - tolerance, end + DEFAULT_INTERVAL + tolerance, tariff=0)
    values = derive(meter, readings, start, end, now, tolerance)
    return store.write_intervals(values, check=rules or IntervalRules([meter], config), now=now)


def without_profile(config: Config) -> set[str]:
    """Serials of the meters polled over a protocol that keeps no load profile (its spec lacks
    ``profiles``; push gateways publish their own intervals): those whose intervals are derived."""
    from amr.drivers.registry import spec

    kinds = {bus.name: spec(bus.kind) for bus in config.buses}
    return {
        m.serial
        for m in config.meters
        if m.bus in kinds and not kinds[m.bus].push and "profiles" not in kinds[m.bus].capabilities
    }
