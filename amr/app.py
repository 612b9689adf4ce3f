"""The wired application: configuration, store, meters with ids, ingestor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from amr.config import Config, load_config
from amr.core.gc_policy import freeze_start_up, paused_gc
from amr.core.meters import Meter
from amr.errors import NotFound
from amr.ingest.ingestor import Ingestor
from amr.store import Store
from amr.validation.intervals import IntervalRules


@dataclass
class App:
    """Everything a command needs, opened from one configuration file."""

    config: Config
    store: Store
    meters: dict[str, Meter]
    ingestor: Ingestor
    registry_version: int | None = None  # the registry's version loaded (``[registry] source = "database"``)
    _interval_rules: IntervalRules | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config: Config | str | Path) -> App:
        """Load the configuration (if a path), open the store, mirror the meters into it."""
        # thousands of meters, their models and rows: many objects and no cycles, which the cyclic
        # collector would scan again and again while they are made (a tenth of a second for 100,000)
        version = None
        with paused_gc():
            if not isinstance(config, Config):
                config = load_config(config)
            store = Store.open(config.database, config.site.timezone)
            try:
                if config.registry.source == "database":
                    from amr.registry.load import load, warn_unused

                    warn_unused(config)
                    loaded = load(store, config)
                    config, meters, version = loaded.config, loaded.meters, loaded.version
                else:
                    meters = store.sync_meters(config.meter_objects())
            except Exception:
                store.close()
                raise
        freeze_start_up()
        ingestor = Ingestor(store, meters, config.site.clock_tolerance, tz=config.site.tz)
        return cls(config, store, {m.serial: m for m in meters}, ingestor, version)

    def refresh(self) -> bool:
        """Take the registry's buses and meters again when it changed since they were loaded (``[registry]
        source = "database"``); True when they were. The ingestor takes the new meters (a batch being
        judged keeps those it started with)."""
        if self.registry_version is None:
            return False
        from amr.registry.load import current_version, load

        if current_version(self.store) == self.registry_version:
            return False
        loaded = load(self.store, self.config)
        self.config = loaded.config
        self.meters = {m.serial: m for m in loaded.meters}
        self.ingestor.meters = dict(self.meters)
        self._interval_rules = None
        self.registry_version = loaded.version
        return True

    def meter(self, serial: str) -> Meter:
        """A configured meter by serial; `NotFound` naming the fix otherwise."""
        try:
            return self.meters[serial]
        except KeyError:
            raise NotFound(
                f"no meter with serial {serial!r} in {self.config.source_path or 'the configuration'}"
            ) from None

    def point_meters(self, point: str) -> list[Meter]:
        """The meters that served a metering point, oldest first."""
        found = [m for m in self.meters.values() if m.point == point]
        if not found:
            raise NotFound(f"no metering point {point!r} in the configuration")
        return sorted(found, key=lambda m: (m.installed is not None, m.installed))

    def interval_rules(self) -> IntervalRules:
        """The interval rules of the configured meters and ``[intervals]``, for
        `Store.write_intervals(values, check=app.interval_rules())` (made once per set of meters)."""
        if self._interval_rules is None:
            self._interval_rules = IntervalRules(self.meters.values(), self.config.intervals)
        return self._interval_rules

    def close(self) -> None:
        """Release the store."""
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
