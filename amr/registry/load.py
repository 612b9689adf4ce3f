"""The registry as a running process uses it: the configuration with the registry's buses and meters."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from amr.config import Config
from amr.core.gc_policy import paused_gc
from amr.core.meters import Meter
from amr.registry.shaped import shaped_registry
from amr.registry.stored import version
from amr.store import Store
from amr.store.store import translate_errors

log = logging.getLogger("amr.registry")


@dataclass(frozen=True)
class Loaded:
    """The registry at one version: `config` with its buses and meters, the meters with their ids."""

    config: Config
    meters: list[Meter]
    version: int


def current_version(store: Store) -> int:
    """The registry's change counter (one small query)."""
    with translate_errors(), store.engine.connect() as conn:
        return version(conn)


def warn_unused(config: Config) -> None:
    """Say so when a file that takes its meters from the registry lists meters or buses of its own."""
    if config.meters or config.buses:
        log.warning(
            "%s: [registry] source = \"database\": its %d [[meters]] and %d [[buses]] are not used; "
            "apply them with amr registry apply -c FILE",
            config.source_path or "the configuration", len(config.meters), len(config.buses),
        )


def load(store: Store, base: Config) -> Loaded:
    """The registry's buses and meters under `base`'s other sections, read in one transaction and
    validated by the configuration's rules; `ConfigError` naming the entry and key when a stored
    entry no longer validates (e.g. a protocol setting a newer version refuses)."""
    with translate_errors(), store.engine.connect() as conn, paused_gc():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        held = version(conn)
        config, meters = shaped_registry(conn, base)
    return Loaded(config, meters, held)
