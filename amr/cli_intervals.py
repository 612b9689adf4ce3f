"""`amr intervals` (a meter's profile, with what is missing) and `amr estimate` (fill short gaps)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from amr.core.domain import CHANNELS, Channel
from amr.errors import InputError
from amr.outputs.intervals import STATUSES, Slot, flag_names, meter_profile
from amr.validation.intervals import SumMismatch

Command = Callable[[str, str], argparse.ArgumentParser]


def _period(args: argparse.Namespace, tz: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """--from/--to as UTC; default yesterday and today in the site's zone."""
    from amr.cli import _when

    today = now.astimezone(tz).date().isoformat()
    start = _when(args.start, tz) if args.start else _when(today, tz) - timedelta(days=1)
    end = _when(args.end, tz, end=True) if args.end else _when(today, tz, end=True)
    if end <= start:
        raise InputError("the period is empty: --to must be later than --from")
    return start, end


def slot_json(slot: Slot, tz: ZoneInfo) -> dict[str, Any]:
    """One expected interval as JSON: times, energy in kWh (kvarh), status, source, method, flags."""
    from amr.core.domain import kwh_from_wh

    v = slot.value
    return {
        "channel": slot.channel.value,
        "start": slot.start.isoformat(),
        "local_start": slot.start.astimezone(tz).isoformat(timespec="minutes"),
        "minutes": int((slot.end - slot.start).total_seconds() // 60),
        "value": None if v is None else str(kwh_from_wh(v.wh)),
        "wh": None if v is None else v.wh,
        "status": slot.status,
        "source": None if v is None else v.source.value,
        "method": None if v is None else v.method,
        "flags": [] if v is None else flag_names(v.flags),
    }


def mismatch_json(m: SumMismatch, tz: ZoneInfo) -> dict[str, Any]:
    """A sum-check finding as JSON."""
    return {
        "reason": m.reason.value,
        "channel": m.channel.value,
        "from": m.start.astimezone(tz).isoformat(timespec="minutes"),
        "to": m.end.astimezone(tz).isoformat(timespec="minutes"),
        "register_wh": m.register_wh,
        "intervals_wh": m.intervals_wh,
        "tolerance_wh": m.tolerance_wh,
    }


def cmd_intervals(args: argparse.Namespace) -> int:
    from amr.cli import _open, _print_json

    now = datetime.now(UTC)
    channels = [Channel(args.channel)] if args.channel else list(CHANNELS)
    with _open(args.config) as app:
        tz = app.config.site.tz
        meter = app.meter(args.meter)
        start, end = _period(args, tz, now)
        slots, mismatches = meter_profile(app.store, meter, channels, start, end, now)
    counts = {s: sum(1 for slot in slots if slot.status == s) for s in STATUSES}
    if args.json:
        _print_json(
            {
                "meter": meter.serial,
                "timezone": tz.key,
                "intervals": [slot_json(s, tz) for s in slots],
                "counts": counts,
                "sum_check": [mismatch_json(m, tz) for m in mismatches],
            }
        )
        return 0
    print(f"meter {meter.serial} ({meter.name}), intervals in {tz.key}, kWh / kvarh at the primary side")
    print(f"{'start':<17} {'min':>3} {'channel':<8} {'value':>14}  {'status':<10} source / method")
    for slot in slots:
        row = slot_json(slot, tz)
        how = "" if slot.value is None else f"{row['source']}" + (f" / {row['method']}" if row["method"] else "")
        flags = f"  [{','.join(row['flags'])}]" if row["flags"] else ""
        value = row["value"] or "—"
        print(
            f"{row['local_start'][:16]:<17} {row['minutes']:>3} {slot.channel.value:<8} {value:>14}"
            f"  {slot.status:<10} {how}{flags}"
        )
    print(", ".join(f"{count} {status}" for status, count in counts.items()))
    for m in mismatches:
        row = mismatch_json(m, tz)
        print(
            f"sum_mismatch {row['channel']} {row['from'][:16]}…{row['to'][:16]}: registers {m.register_wh} Wh, "
            f"intervals {m.intervals_wh} Wh (tolerance {m.tolerance_wh} Wh)"
        )
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from amr.cli import _open, _print_json
    from amr.store.derived import derive_meter, without_profile
    from amr.store.estimates import estimate_meter
    from amr.store.sum_checks import record_sum_check

    now = datetime.now(UTC)
    report: list[dict[str, Any]] = []
    with _open(args.config) as app:
        tz = app.config.site.tz
        start, end = _period(args, tz, now)
        chosen = [app.meter(args.meter)] if args.meter else list(app.meters.values())
        rules = app.interval_rules()
        derived = without_profile(app.config)
        for meter in chosen:
            upto = min(end, now)
            made = derive_meter(app.store, meter, app.config.intervals, start, upto, now, rules).accepted \
                if meter.serial in derived else 0
            estimate, written = estimate_meter(app.store, meter, app.config.intervals, tz, start, upto, now, rules)
            mismatches = record_sum_check(app.store, meter, start, upto, now)
            report.append(
                {
                    "meter": meter.serial,
                    "derived": made,
                    "sum_mismatches": len(mismatches),
                    **written.counts(),
                    "filled": [
                        {"channel": g.channel.value, "from": g.start.isoformat(), "to": g.end.isoformat(), "method": m}
                        for g, m in estimate.filled
                    ],
                    "left": [
                        {"channel": g.channel.value, "from": g.start.isoformat(), "to": g.end.isoformat(), "why": w}
                        for g, w in estimate.left
                    ],
                }
            )
    if args.json:
        _print_json(report)
        return 0
    for row in report:
        print(
            f"{row['meter']}: {row['derived']} derived from registers, {row['accepted']} estimated, "
            f"{row['replaced']} re-estimated, {row['sum_mismatches']} sum mismatch(es), "
            f"{len(row['left'])} gap(s) left"
        )
        for gap in row["left"]:
            start_local = datetime.fromisoformat(gap["from"]).astimezone(tz).isoformat(timespec="minutes")
            end_local = datetime.fromisoformat(gap["to"]).astimezone(tz).isoformat(timespec="minutes")
            print(f"  {gap['channel']} {start_local[:16]}…{end_local[:16]}: {gap['why']}")
    return 0


def add_parsers(command: Command) -> None:
    """Add `intervals` and `estimate` with `command` (the CLI's maker of a subcommand with -c)."""
    p = command("intervals", "a meter's interval data (load profile): measured, estimated and missing intervals")
    p.add_argument("--meter", required=True)
    p.add_argument("--from", dest="start", help="date (site's zone) or ISO datetime; default yesterday")
    p.add_argument("--to", dest="end", help="date (its whole day is included) or ISO datetime; default today")
    p.add_argument("--channel", choices=[c.value for c in CHANNELS])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_intervals)

    p = command(
        "estimate", "derive intervals from registers (meters without profiles), fill short gaps (flagged estimated)"
    )
    p.add_argument("--meter", help="one meter (default: every meter)")
    p.add_argument("--from", dest="start", help="date (site's zone) or ISO datetime; default yesterday")
    p.add_argument("--to", dest="end", help="date (its whole day is included) or ISO datetime; default today")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)
