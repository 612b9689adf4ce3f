"""The `amr` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from amr import __version__
from amr.config import load_config
from amr.core.domain import CHANNELS, Channel, Flag, StoredReading, kwh_from_wh
from amr.core.gc_policy import freeze_start_up, process_is_a_command
from amr.errors import AmrError, ConfigError, InputError
from amr.outputs.consumption import Step, boundaries, consumption, gap_text
from amr.outputs.intervals import apply_intervals, consumption_covers

if TYPE_CHECKING:
    from amr.app import App


def _open(config: str) -> App:
    """The application of a configuration file (imported here: `check-config` needs no store)."""
    from amr.app import App

    return App.open(config)


def _when(text: str, tz: ZoneInfo, end: bool = False) -> datetime:
    """A CLI date (site's zone; an end date includes that whole day) or ISO datetime, as UTC."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + (timedelta(days=1) if end else timedelta())
            return datetime.combine(day, time(), tz).astimezone(UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{text!r} is not a date (2026-01-31) or an ISO datetime (2026-01-31T12:00+03:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _local(ts: datetime, tz: ZoneInfo) -> str:
    return ts.astimezone(tz).isoformat(timespec="minutes")


def _kwh(value: int | None) -> str | None:
    return None if value is None else str(kwh_from_wh(value))


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    freeze_start_up()
    warnings: Sequence[str] = ()
    if config.buses:  # line times concern buses only (and import the protocols' settings)
        from amr.drivers.line_time import line_time_warnings

        warnings = line_time_warnings(config)
    for warning in warnings:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(f"{args.config}: OK — {len(config.meters)} meter(s), site time zone {config.site.timezone}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from amr.store import Store, migrate

    store = Store.open(config.database, config.site.timezone, upgrade=False)
    try:
        before = migrate.current_revision(store.engine)
        store.upgrade()
        after = migrate.current_revision(store.engine)
    finally:
        store.close()
    extra = " with TimescaleDB" if store.timescale else ""
    print(f"database at revision {after} (was {before or 'empty'}){extra}")
    return 0


RUN_PER_SERIES = 32
"""Readings of one series a batch should hold so that a file by time (every meter at 00:30, then
at 01:00, ...) gives each series a run the pipeline judges at once, not reading by reading."""
LARGEST_BATCH = 100_000


def import_batch_size(configured: int, meters: int) -> int:
    """The configured batch size, raised to `RUN_PER_SERIES` readings per meter (up to `LARGEST_BATCH`)."""
    return max(configured, min(LARGEST_BATCH, RUN_PER_SERIES * meters))


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    from amr.ingest.bulk import BulkIngest
    from amr.ingest.csvfile import count_rows, read_readings

    with _open(args.config) as app, path.open("rb") as stream:
        bar = None
        if sys.stderr.isatty() and not args.json:
            from tqdm import tqdm

            bar = tqdm(total=count_rows(path), unit="row", desc=path.name, file=sys.stderr)
        try:
            def progress(count: int) -> None:
                if bar is not None:
                    bar.update(count)

            summary = BulkIngest(app.ingestor, import_batch_size(app.config.database.batch_size, len(app.meters))).run(
                read_readings(stream, str(path)), progress=progress
            )
        finally:
            if bar:
                bar.close()
    if args.json:
        _print_json(summary.as_dict())
        return 0
    print(f"{path.name}: {summary.total} row(s)")
    print(f"  accepted   {summary.accepted}")
    for flag, count in sorted(summary.flagged.items()):
        print(f"    flagged {flag}: {count}")
    print(f"  duplicate  {summary.duplicate}")
    print(f"  refused    {summary.refused}")
    for reason, count in sorted(summary.rejected.items()):
        print(f"    {reason}: {count}")
    return 0


def _reading_json(r: StoredReading, serial: str, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "meter": serial,
        "timestamp": r.ts.isoformat(),
        "local_time": _local(r.ts, tz),
        "tariff": r.tariff,
        **{c.value: _kwh(r.values.get(c)) for c in CHANNELS},
        "source": r.source,
        "flags": Flag.names(r.flags),
    }


def cmd_readings(args: argparse.Namespace) -> int:
    with _open(args.config) as app:
        tz = app.config.site.tz
        meter = app.meter(args.meter)
        start = _when(args.start, tz) if args.start else None
        end = _when(args.end, tz, end=True) if args.end else None
        rows = app.store.readings([meter.id], start, end, args.tariff)
    data = [_reading_json(r, meter.serial, tz) for r in rows]
    if args.json:
        _print_json(data)
        return 0
    print(f"meter {meter.serial} ({meter.name}), times in {tz.key}, kWh / kvarh at the primary side")
    print(f"{'time':<17} {'T':>1} {'A+':>14} {'A-':>14} {'R+':>14} {'R-':>14}  source        flags")
    for row in data:
        cells = [row[c.value] or "—" for c in CHANNELS]
        print(
            f"{row['local_time'][:16]:<17} {row['tariff']:>1} "
            + " ".join(f"{c:>14}" for c in cells)
            + f"  {row['source']:<13} {','.join(row['flags'])}"
        )
    print(f"{len(data)} reading(s)")
    return 0


def cmd_rejected(args: argparse.Namespace) -> int:
    status = None if args.status == "all" else args.status
    with _open(args.config) as app:
        tz = app.config.site.tz
        records = app.store.rejected(status, args.meter, limit=args.limit)
    data = [
        {
            "id": r.id,
            "meter": r.meter_serial,
            "timestamp": r.ts.isoformat() if r.ts else None,
            "tariff": r.tariff,
            **{c.value: _kwh(r.values.get(c)) for c in CHANNELS},
            "source": r.source,
            "reasons": list(r.reasons),
            "message": r.message,
            "status": r.status,
            "payload": r.payload,
        }
        for r in records
    ]
    if args.json:
        _print_json(data)
        return 0
    print(f"times in {tz.key}")
    for r in records:
        when = _local(r.ts, tz)[:16] if r.ts else "—"
        print(
            f"#{r.id:<6} {r.meter_serial:<14} {when:<17} T{'-' if r.tariff is None else r.tariff} "
            f"{','.join(r.reasons):<24} {r.message}"
        )
    print(f"{len(records)} refused reading(s)")
    return 0


def cmd_accept(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise InputError("--reason is required: say why the refused reading is accepted")
    with _open(args.config) as app:
        record = app.store.get_rejected(args.id)
        meter = app.meter(record.meter_serial)
        app.store.override(args.id, meter, args.actor, args.reason, datetime.now(UTC))
    print(f"refused reading #{args.id} accepted as overridden by {args.actor}")
    return 0


def cmd_consumption(args: argparse.Namespace) -> int:
    channel = Channel(args.channel)
    step = Step(args.step)
    with _open(args.config) as app:
        tz = app.config.site.tz
        meters = app.point_meters(args.point) if args.point else [app.meter(args.meter)]
        now = datetime.now(UTC)
        end = _when(args.end, tz, end=True) if args.end else now
        start = (
            _when(args.start, tz)
            if args.start
            else end - (timedelta(days=31) if step is not Step.MONTH else timedelta(days=366))
        )
        edges = boundaries(start, end, step, tz)
        series = [(m, app.store.consumption_series(m, args.tariff, step, edges[0], edges[-1])) for m in meters]
        buckets = consumption(series, channel, edges)
        covers = consumption_covers(app.store, meters, channel, args.tariff, buckets, now)
    basis = apply_intervals(buckets, covers) if covers is not None else ["registers"] * len(buckets)
    data: list[dict[str, Any]] = [
        {
            "start": _local(b.start, tz),
            "end": _local(b.end, tz),
            "value": _kwh(b.value),
            "unit": channel.unit,
            "complete": b.complete,
            "gaps": [[_local(s, tz), _local(e, tz)] for s, e in b.gaps],
            "basis": how,
            "intervals": None if covers is None or covers[i] is None else covers[i].as_dict(),  # type: ignore[union-attr]
        }
        for i, (b, how) in enumerate(zip(buckets, basis, strict=True))
    ]
    if args.json:
        _print_json(data)
        return 0
    label = f"point {args.point}" if args.point else f"meter {args.meter}"
    print(
        f"{label}: {channel.label} consumption by {step.value}, tariff {args.tariff}, {channel.unit}, {tz.key}"
    )
    for bucket, row in zip(buckets, data, strict=True):
        texts = [gap_text(bucket, gap, tz) for gap in bucket.gaps]
        note = "" if not texts else "  no readings" if texts == ["no readings"] else "  gap " + ", ".join(texts)
        if row["intervals"] is not None:
            counts = ", ".join(f"{n} {status}" for status, n in row["intervals"].items() if n)
            note += f"  [{row['basis']}: {counts}]"
        print(f"{row['start'][:16]}  {row['value'] or '—':>14}{note}")
    return 0


OWN_COMMANDS = frozenset(
    {"check-config", "db", "import", "readings", "rejected", "accept", "consumption", "intervals", "estimate"}
)
"""Commands defined here; the others (collect, api, sim, demo) pull in their servers when added."""
_SERVER_ADDERS = (
    ("amr.collector.command", "add_parser"),
    ("amr.api.command", "add_parsers"),
    ("simulators.cli", "add_parser"),
    ("amr.demo", "add_parser"),
    ("amr.collector.backfill_command", "add_parser"),
    ("amr.operations.command", "add_parser"),
    ("amr.registry.command", "add_parser"),
)
_SERVER_COMMANDS = {
    "collect": _SERVER_ADDERS[0],
    "api": _SERVER_ADDERS[1],
    "run": _SERVER_ADDERS[1],
    "users": _SERVER_ADDERS[1],
    "sim": _SERVER_ADDERS[2],
    "demo": _SERVER_ADDERS[3],
    "backfill": _SERVER_ADDERS[4],
    "clock": _SERVER_ADDERS[5],
    "events": _SERVER_ADDERS[5],
    "registry": _SERVER_ADDERS[6],
}
"""The module adding each of the other commands: a command named on the line loads only its own
(`amr collect` does not import the API); help, or an unknown command, loads them all."""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; for a command named in `argv`, only what it needs (a faster start):
    one of `OWN_COMMANDS` adds none of the others, another adds only its own module's."""
    parser = argparse.ArgumentParser(prog="amr", description="АСКУЭ (AMR) integration service")
    parser.add_argument("--version", action="version", version=f"amr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
        return p

    p = command("check-config", "validate a configuration file")
    p.set_defaults(func=cmd_check_config)

    db = sub.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    p = dbsub.add_parser("upgrade", help="apply migrations")
    p.add_argument("-c", "--config", required=True)
    p.set_defaults(func=cmd_db_upgrade)

    p = command("import", "validate and store readings from a CSV file")
    p.add_argument(
        "file", help="CSV with header meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus[,source]"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_import)

    p = command("readings", "accepted readings of a meter in time order")
    p.add_argument("--meter", required=True)
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")
    p.add_argument("--tariff", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_readings)

    p = command("rejected", "refused readings with their reasons")
    p.add_argument("--status", choices=["open", "accepted", "all"], default="open")
    p.add_argument("--meter")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rejected)

    p = command("accept", "accept a refused reading (override, audited)")
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    p.add_argument("--actor", default="operator")
    p.set_defaults(func=cmd_accept)

    p = command("consumption", "consumption by 30min, hour, day or month in the site's time zone")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--meter")
    target.add_argument("--point", help="a metering point: sums its meters across a replacement")
    p.add_argument("--step", choices=[s.value for s in Step], default="day")
    p.add_argument("--channel", choices=[c.value for c in CHANNELS], default="a_plus")
    p.add_argument("--tariff", type=int, default=0)
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_consumption)

    from amr.cli_intervals import add_parsers as add_interval_parsers

    add_interval_parsers(command)

    command_name = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    if command_name in OWN_COMMANDS:
        return parser
    adders = [_SERVER_COMMANDS[command_name]] if command_name in _SERVER_COMMANDS else _SERVER_ADDERS
    for module, function in adders:
        getattr(importlib.import_module(module), function)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `amr` console script (`argv` given: called from within another program)."""
    if argv is None:
        process_is_a_command()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except AmrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
