"""The wired application: configuration, store, meters with ids, ingestor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amr.config import Config, load_config
from amr.core.gc_policy import freeze_start_up, paused_gc
from amr.core.meters import Meter
from amr.errors import NotFound
from amr.ingest.ingestor import Ingestor
from amr.store import Store


@dataclass
class App:
    """Everything a command needs, opened from one configuration file."""

    config: Config
    store: Store
    meters: dict[str, Meter]
    ingestor: Ingestor

    @classmethod
    def open(cls, config: Config | str | Path) -> App:
        """Load the configuration (if a path), open the store, mirror the meters into it."""
        # thousands of meters, their models and rows: many objects and no cycles, which the cyclic
        # collector would scan again and again while they are made (a tenth of a second for 100,000)
        with paused_gc():
            if not isinstance(config, Config):
                config = load_config(config)
            store = Store.open(config.database, config.site.timezone)
            try:
                meters = store.sync_meters(config.meter_objects())
            except Exception:
                store.close()
                raise
        freeze_start_up()
        ingestor = Ingestor(store, meters, config.site.clock_tolerance, tz=config.site.tz)
        return cls(config, store, {m.serial: m for m in meters}, ingestor)

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

    def close(self) -> None:
        """Release the store."""
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
