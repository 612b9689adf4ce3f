"""What applying a list of meters and buses to the registry changes, and applying it in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from amr.config import BusConfig, Config, MeterConfig, check_field_settings, stored_entries
from amr.errors import ConfigError
from amr.registry.entries import Entry, config_entries, registry_config, shown
from amr.registry.rows import ANALYZE_AFTER
from amr.registry.stored import (
    base_without_meters,
    bump,
    delete_buses,
    names,
    read_buses,
    read_meters,
    retire_meters,
    transaction,
    write_buses,
    write_meters,
)
from amr.store import Store
from amr.store.models import audit_log_table


@dataclass
class Changes:
    """Added, changed and removed buses and meters (changed: key → (before, after)); new objects and points."""

    buses_added: list[str] = field(default_factory=list)
    buses_changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    buses_removed: list[str] = field(default_factory=list)
    meters_added: list[str] = field(default_factory=list)
    meters_changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    meters_removed: list[str] = field(default_factory=list)
    objects_added: list[str] = field(default_factory=list)
    points_added: list[str] = field(default_factory=list)
    secrets: frozenset[str] = frozenset()
    version: int | None = None  # the registry's version after the change (None: nothing written)

    def __bool__(self) -> bool:
        return bool(
            self.buses_added or self.buses_changed or self.buses_removed
            or self.meters_added or self.meters_changed or self.meters_removed
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """How many of each kind were added, changed, removed."""
        return {
            "buses": {"added": len(self.buses_added), "changed": len(self.buses_changed),
                      "removed": len(self.buses_removed)},
            "meters": {"added": len(self.meters_added), "changed": len(self.meters_changed),
                       "removed": len(self.meters_removed)},
            "objects": {"added": len(self.objects_added)},
            "points": {"added": len(self.points_added)},
        }

    def summary(self) -> str:
        """One line: the counts."""
        c = self.counts()
        return (
            f"meters: {c['meters']['added']} added, {c['meters']['changed']} changed, "
            f"{c['meters']['removed']} removed; "
            f"buses: {c['buses']['added']} added, {c['buses']['changed']} changed, {c['buses']['removed']} removed; "
            f"objects: {c['objects']['added']} added; points: {c['points']['added']} added"
        )

    def lines(self, limit: int = 200) -> list[str]:
        """The changes one per line (at most `limit` lines, then how many more), secrets hidden."""
        out: list[str] = []
        out += [f"+ bus {n}" for n in self.buses_added]
        out += [f"~ bus {n}: {self._keys(k)}" for n, k in self.buses_changed.items()]
        out += [f"- bus {n}" for n in self.buses_removed]
        out += [f"+ object {n}" for n in self.objects_added]
        out += [f"+ point {n}" for n in self.points_added]
        out += [f"+ meter {n}" for n in self.meters_added]
        out += [f"~ meter {n}: {self._keys(k)}" for n, k in self.meters_changed.items()]
        out += [f"- meter {n} (taken out of the registry; its readings are kept)" for n in self.meters_removed]
        if len(out) > limit:
            out = [*out[:limit], f"... and {len(out) - limit} more"]
        return out

    def _keys(self, keys: dict[str, tuple[Any, Any]]) -> str:
        return "; ".join(f"{k} {self._shown(a)} → {self._shown(b)}" for k, (a, b) in keys.items())

    def _shown(self, value: Any) -> str:
        if value is None:
            return "(none)"
        text = shown(value)
        return "(secret)" if any(s and s in text for s in self.secrets) else text


def _diff(before: Entry, after: Entry) -> dict[str, tuple[Any, Any]]:
    return {k: (before.get(k), after.get(k)) for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)}


def _secrets(*configs: Config) -> frozenset[str]:
    found: set[str] = set()
    for config in configs:
        entries: list[BusConfig | MeterConfig] = [*config.buses, *config.meters]
        for entry in entries:
            found.update(entry.settings.secrets())
    return frozenset(found)


def stored_config(conn: Any, base: Config) -> tuple[Config, dict[str, int]]:
    """The registry in the store, validated under `base`'s sections; and the meters' ids by serial."""
    meters, ids = read_meters(conn)
    with stored_entries():
        return registry_config(base_without_meters(base), read_buses(conn), meters), ids


def compare(current: Config, wanted: Config, remove: bool = True) -> Changes:
    """What turning `current`'s buses and meters into `wanted`'s changes (`remove`: what `wanted` lacks goes)."""
    old_buses, old_meters = config_entries(current)
    new_buses, new_meters = config_entries(wanted)
    changes = Changes(secrets=_secrets(current, wanted))
    changes.buses_added = [n for n in new_buses if n not in old_buses]
    changes.buses_changed = {
        n: d for n, e in new_buses.items() if n in old_buses for d in [_diff(old_buses[n], e)] if d
    }
    changes.meters_added = [s for s in new_meters if s not in old_meters]
    changes.meters_changed = {
        s: d for s, e in new_meters.items() if s in old_meters for d in [_diff(old_meters[s], e)] if d
    }
    if remove:
        changes.buses_removed = [n for n in old_buses if n not in new_buses]
        changes.meters_removed = [s for s in old_meters if s not in new_meters]
    return changes


def apply(store: Store, wanted: Config, *, dry_run: bool = False, remove: bool = True,
          actor: str = "registry apply", reason: str = "") -> Changes:
    """Make the registry hold `wanted`'s buses and meters, in one transaction under the registry's lock:
    what it changes (nothing is written with `dry_run` or when nothing differs). With `remove`, buses
    and meters the registry has and `wanted` lacks go (a meter is retired: its readings stay); without
    it they stay, and the result must still validate as a whole (e.g. no meter left on a missing bus)."""
    with transaction(store) as conn:
        current, _ = stored_config(conn, wanted)
        if not remove:
            kept_buses = {b.name: b for b in current.buses} | {b.name: b for b in wanted.buses}
            given = {m.serial for m in wanted.meters}  # after the kept ones: a clash names the meter given
            kept_meters = {m.serial: m for m in current.meters if m.serial not in given} | {
                m.serial: m for m in wanted.meters}
            wanted = wanted.model_copy(
                update={"buses": list(kept_buses.values()), "meters": list(kept_meters.values())}
            )
            try:
                check_field_settings(wanted)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        changes = compare(current, wanted, remove)
        objects, points = names(conn)
        domain = wanted.meter_objects()
        changes.objects_added = sorted({m.object or "—" for m in domain} - objects)
        changes.points_added = sorted({m.point for m in domain} - points)
        if dry_run or not changes:
            return changes
        _, entries = config_entries(wanted)
        touched = set(changes.meters_added) | set(changes.meters_changed)
        buses = {b.name: b for b in wanted.buses}
        bus_entries, _ = config_entries(wanted.model_copy(update={"meters": [], "buses": [
            buses[n] for n in [*changes.buses_added, *changes.buses_changed]]}))
        write_buses(conn, list(bus_entries.values()))
        write_meters(conn, [m for m in domain if m.serial in touched], [entries[s] for s in entries if s in touched])
        retire_meters(conn, changes.meters_removed, datetime.now(UTC))
        delete_buses(conn, changes.buses_removed)
        if conn.dialect.name == "postgresql" and len(touched) + len(changes.meters_removed) >= ANALYZE_AFTER:
            # fresh statistics at once, not when autovacuum comes by: without them a page of the admin
            # API's keyset (serial > x ORDER BY serial LIMIT n) is planned as a scan of every meter
            conn.execute(text("ANALYZE meters, metering_points, objects, meter_accounts, meter_ratios, buses"))
        changes.version = bump(conn)
        conn.execute(audit_log_table.insert().values(
            at=datetime.now(UTC), actor=actor, action="registry.apply", subject="registry", reason=reason,
            details=json.dumps({**changes.counts(), "version": changes.version}),
        ))
        return changes
