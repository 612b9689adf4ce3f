"""``amr registry apply | import | export``: the meter registry in the store, from a file and back.

* ``apply -c FILE [--dry-run] [--keep]``: make the registry hold the file's ``[[buses]]`` and
  ``[[meters]]`` (with their objects and points); prints what it changes, then changes it in one
  transaction under the registry's lock. What the registry has and the file lacks is removed
  (a meter is retired: its readings stay) unless ``--keep``. Applying the same file again
  changes nothing.
* ``import -c FILE meters.csv [--dry-run] [--replace]``: add or change the CSV's meters
  (`amr.registry.csvfile`); buses stay as they are. ``--replace``: meters the CSV lacks are
  removed. Every row is checked before anything is written: nothing half-applied.
* ``export -c FILE [-o meters.csv]``: the registry's meters as that CSV.

Exit codes: 0 done (or nothing to do), 1 bad input (every bad line listed), 2 configuration error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from amr.config import Config, load_config
from amr.errors import AmrError, ConfigError, InputError
from amr.registry.changes import Changes, apply, stored_config
from amr.registry.csvfile import entries_in_order, read_meters, write_meters
from amr.registry.entries import config_entries, registry_config
from amr.registry.stored import base_without_meters, read_buses
from amr.store import Store
from amr.store.store import translate_errors


def add_parser(subparsers: Any) -> None:
    """Register ``registry`` and its commands on the `amr` command line's subparsers."""
    text = "the meter registry in the database: apply a configuration file, import or export meters"
    registry = subparsers.add_parser("registry", help=text, description=text)
    sub = registry.add_subparsers(dest="registry_command", required=True)

    p = sub.add_parser("apply", help="make the registry hold the file's buses and meters")
    p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.add_argument("--keep", action="store_true", help="keep buses and meters the file lacks")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("import", help="add or change the meters of a CSV file")
    p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
    p.add_argument("file", help="CSV with a header of [[meters]] keys (serial, name, object, point, bus, ...)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.add_argument("--replace", action="store_true", help="remove the meters the file lacks")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="the registry's meters as CSV")
    p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
    p.add_argument("-o", "--output", help="write to this file (default: standard output)")
    p.set_defaults(func=cmd_export)


def _report(changes: Changes, dry_run: bool, as_json: bool) -> None:
    if as_json:
        json.dump({**changes.counts(), "dry_run": dry_run, "version": changes.version}, sys.stdout)
        sys.stdout.write("\n")
        return
    for line in changes.lines():
        print(line)
    if not changes:
        print("the registry already holds this; nothing to change")
        return
    verb = "would change" if dry_run else f"changed (registry version {changes.version})"
    print(f"{verb}: {changes.summary()}")


def _store(config: Config) -> Store:
    return Store.open(config.database, config.site.timezone)


def cmd_apply(args: argparse.Namespace) -> int:
    """``amr registry apply``."""
    config = load_config(args.config)
    store = _store(config)
    try:
        changes = apply(store, config, dry_run=args.dry_run, remove=not args.keep, actor="amr registry apply",
                        reason=str(args.config))
    finally:
        store.close()
    _report(changes, args.dry_run, args.json)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``amr registry import``."""
    config = load_config(args.config)
    path = Path(args.file)
    store = _store(config)
    try:
        with translate_errors(), store.engine.connect() as conn:
            buses = read_buses(conn)
        kinds = {str(b["name"]): str(b["kind"]) for b in buses}
        entries, lines = read_meters(path, kinds)
        try:
            wanted = registry_config(base_without_meters(config), buses, entries, str(path))
            changes = apply(store, wanted, dry_run=args.dry_run, remove=args.replace, actor="amr registry import",
                            reason=str(path))
        except ConfigError as exc:
            raise _by_line(str(exc), path, lines) from None
    finally:
        store.close()
    _report(changes, args.dry_run, args.json)
    return 0


def _by_line(message: str, path: Path, lines: dict[str, int]) -> AmrError:
    """A cross-reference error of the CSV's meters (an address taken on a bus or unusable, an unknown bus),
    each line about ``meters[i] (SERIAL).key`` (as the file's meters, or with the registry's, were
    validated) retold as the CSV's ``FILE:LINE: column key:``: an `InputError` (a bad row) when one is
    about a row of the file, else the `ConfigError` as it was (e.g. the registry no longer validates)."""
    about = re.compile(rf"^(?:{re.escape(str(path))}: )?meters\[\d+\] \((?P<serial>[^)]*)\)(?:\.(?P<key>[\w.]+))?: ",
                       re.MULTILINE)

    def retold(found: re.Match[str]) -> str:
        line = lines.get(found["serial"])
        if line is None:  # a meter of the registry, not of the file
            return found[0]
        key = found["key"]
        return f"{path}:{line}: column {key.split('.')[0]}: " if key else f"{path}:{line}: "

    text = about.sub(retold, message)
    return InputError(text) if text != message else ConfigError(message)


def cmd_export(args: argparse.Namespace) -> int:
    """``amr registry export``."""
    config = load_config(args.config)
    store = _store(config)
    try:
        with translate_errors(), store.engine.connect() as conn:
            current, _ = stored_config(conn, config)
    finally:
        store.close()
    _, meters = config_entries(current)
    rows = entries_in_order(list(meters.values()))
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            count = write_meters(out, rows)
        print(f"{count} meter(s) written to {args.output}", file=sys.stderr)
    else:
        write_meters(sys.stdout, rows)
    return 0
