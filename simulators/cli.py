"""`amr sim KIND`: virtual meters on real transports until Ctrl-C, with a ready configuration to poll them.

Examples::

    amr sim modbus-tcp --meters 20 --port 5020
    amr sim mercury230 --transport pty --meters 4 --fault 2:silent --fault 3:corrupt=0.5
    amr sim iec62056-21 --transport tcp               # a converter at a fixed 9600 baud
    amr sim mqtt --meters 50 --period 10s --payload tasmota-sml
    amr sim dlms --framing hdlc --transport pty --meters 8   # or --transport tcp; the TCP wrapper by default

Faults: ``SERIAL_OR_INDEX:NAME[=VALUE]`` with NAME one of silent, delay (seconds), corrupt
(probability), exception (Modbus code), drop (probability), lower (Wh), wrap (duration
until the A+ register wraps), drift (clock offset), refuse (DLMS: every association refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from amr.core.durations import parse_duration
from amr.drivers.registry import KINDS, PROTOCOLS, spec
from amr.errors import InputError
from simulators.model import Faults, VirtualMeter


def parse_fault(text: str, faults: Faults) -> Faults:
    """Apply one ``NAME[=VALUE]`` fault to `faults`."""
    name, _, value = text.partition("=")
    try:
        if name == "silent":
            return replace(faults, silent=True)
        if name == "delay":
            return replace(faults, delay=parse_duration(value or "2s").total_seconds())
        if name == "corrupt":
            return replace(faults, corrupt=float(value or 1))
        if name == "exception":
            return replace(faults, exception=int(value or 2))
        if name == "drop":
            return replace(faults, drop=float(value or 1))
        if name == "lower":
            return replace(faults, lower_by_wh=int(value or 5000))
        if name == "wrap":
            return replace(faults, wrap_after=parse_duration(value or "2h"))
        if name == "drift":
            return replace(faults, clock_drift=parse_duration(value or "90s"))
        if name == "refuse":
            return replace(faults, refuse=True)
    except ValueError as exc:
        raise InputError(f"fault {text!r}: {exc}") from None
    raise InputError(
        f"unknown fault {name!r}; use silent, delay, corrupt, exception, drop, lower, wrap, drift or refuse"
    )


def build_meters(args: argparse.Namespace) -> list[VirtualMeter]:
    """The virtual meters asked for on the command line, faults applied."""
    meters = [
        VirtualMeter(
            serial=f"{args.prefix}{i:04d}",
            address=i,
            tariffs=args.tariffs,
            solar_kw=4.0 if args.prosumers and i % args.prosumers == 0 else 0.0,
            seed=i,
        )
        for i in range(1, args.meters + 1)
    ]
    for given in args.fault:
        who, _, fault = given.partition(":")
        if not fault:
            raise InputError(f"fault {given!r}: write SERIAL_OR_INDEX:NAME[=VALUE], e.g. 2:silent")
        found = [m for m in meters if who in (m.serial, str(m.address))]
        if not found:
            raise InputError(f"fault {given!r}: no simulated meter {who!r} (serials {meters[0].serial}..)")
        for meter in found:
            meter.faults = parse_fault(fault, meter.faults)
    return meters


def families() -> dict[str, tuple[str, ...]]:
    """Kinds sharing one simulator, also named by their first word: ``dlms`` for dlms-tcp and dlms-hdlc."""
    by_hook: dict[str, list[str]] = {}
    for kind, known in PROTOCOLS.items():
        by_hook.setdefault(known.simulator, []).append(kind)
    return {kinds[0].split("-")[0]: tuple(kinds) for kinds in by_hook.values() if len(kinds) > 1}


def resolve_kind(args: argparse.Namespace) -> str:
    """The bus kind `amr sim NAME` serves: NAME, or of a family the serial-line kind on a pty, else the other."""
    kinds = families().get(args.kind)
    if kinds is None:
        return str(args.kind)
    return next(k for k in kinds if PROTOCOLS[k].serial_line is (args.transport == "pty"))


def config_snippet(kind: str, url: str, meters: list[VirtualMeter], args: argparse.Namespace) -> str:
    """TOML for `amr collect` to poll these meters (the protocol's keys from its simulator hook)."""
    hook = spec(kind).simulator_hook()
    lines = ["[[buses]]", f'name = "sim-{kind}"', f'kind = "{kind}"', f'url = "{url}"', *hook.bus_lines(kind, args)]
    lines += ['timeout = "1s"', 'schedule = "30s"', ""]
    for meter in meters:
        lines += ["[[meters]]", f'serial = "{meter.serial}"', f'bus = "sim-{kind}"', f"tariffs = {meter.tariffs}"]
        lines += [*hook.meter_lines(kind, meter), ""]
    return "\n".join(lines)


async def _serve(args: argparse.Namespace, meters: list[VirtualMeter], ready: Callable[[str], None]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url, running = await spec(args.kind).simulator_hook().serve(args.kind, args, meters, stack)
        ready(url)
        await running


def cmd_sim(args: argparse.Namespace) -> int:
    """Run the simulators until SIGINT/SIGTERM."""
    args.kind = resolve_kind(args)
    meters = build_meters(args)

    def ready(url: str) -> None:
        snippet = config_snippet(args.kind, url, meters, args)
        if args.config_out:
            Path(args.config_out).write_text(snippet, encoding="utf-8")
        print(f"{len(meters)} simulated {args.kind} meter(s) at {url}; Ctrl-C stops them", flush=True)
        if not args.quiet:
            print("\n# configuration to poll them:\n" + snippet, flush=True)

    async def main() -> None:
        task = asyncio.ensure_future(_serve(args, meters, ready))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    print("simulators stopped", file=sys.stderr)
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``amr sim``."""
    p = subparsers.add_parser(
        "sim",
        help="virtual meters for test benches",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=(*KINDS, *families()))
    p.add_argument("--meters", type=int, default=4, help="how many meters (addresses 1..N)")
    p.add_argument("--prefix", default="SIM", help="serial prefix (serials PREFIX0001..)")
    p.add_argument("--tariffs", type=int, default=2, choices=[1, 2, 3, 4])
    p.add_argument("--prosumers", type=int, default=0, help="every K-th meter exports (solar), 0: none")
    p.add_argument("--transport", choices=["pty", "tcp"], default="tcp", help="serial kinds: a pty or a TCP socket")
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    p.add_argument(
        "--baud",
        type=int,
        default=None,
        help="simulated line speed of serial kinds (default 9600; IEC 62056-21: 9600 fixed over tcp, "
        "300 with a switch to the meter's offer on a pty)",
    )
    p.add_argument("--fault", action="append", default=[], metavar="WHO:FAULT[=VALUE]")
    shared: set[str] = set()  # a hook several kinds share adds its options once
    for known in PROTOCOLS.values():
        if known.simulator not in shared:
            shared.add(known.simulator)
            known.simulator_hook().add_options(p.add_argument_group(known.kind))
    p.add_argument("--config-out", help="also write the configuration snippet to this file")
    p.add_argument("--quiet", action="store_true", help="do not print the configuration snippet")
    p.set_defaults(func=cmd_sim)


__all__ = ["add_parser", "build_meters", "cmd_sim", "config_snippet", "families", "parse_fault", "resolve_kind"]
