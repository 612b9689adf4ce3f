"""``python -m simulators.dlms``: simulated DLMS/COSEM meters until Ctrl-C, with a configuration to poll them.

Examples::

    python -m simulators.dlms --meters 4 --port 4059                 # TCP wrapper, ports 4059..4062
    python -m simulators.dlms --framing hdlc --meters 8 --port 4000  # HDLC over TCP, one port
    python -m simulators.dlms --transport pty --framing hdlc --fault 2:refuse --fault 3:corrupt=0.3

Meter N has the serial SIM000N and the HDLC physical address 16 + N. Faults:
``SERIAL_OR_INDEX:NAME[=VALUE]``, NAME one of silent, delay (seconds), corrupt (probability), drop
(probability), lower (Wh), wrap (duration until A+ wraps), drift (clock offset), refuse (every
association refused). Passwords: reader (client 32) 12345678, configurator (client 48) 1234567812345678;
the configurator may also use HLS-GMAC with the global keys 000102..0F (encryption) and D0D1..DF
(authentication).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from amr.errors import InputError
from simulators.cli import build_meters
from simulators.dlms.association import PUBLIC
from simulators.dlms.server import DlmsHdlcSimulator, DlmsWrapperSimulator
from simulators.model import VirtualMeter
from simulators.serving import Service

PHYSICAL_BASE = 16  # HDLC physical addresses below 0x10 are reserved (IEC 62056-46)
HDLC_BAUDRATE = 9600


def parser() -> argparse.ArgumentParser:
    """The command line: ``--transport --framing --meters --port --fault``."""
    p = argparse.ArgumentParser(
        prog="python -m simulators.dlms", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--transport", choices=["tcp", "pty"], default="tcp", help="a TCP port (default) or a pty")
    p.add_argument(
        "--framing",
        choices=["wrapper", "hdlc"],
        default=None,
        help="the TCP wrapper (IEC 62056-47, one port per meter; the default over tcp) or HDLC (IEC 62056-46, "
        "the meter chosen by its physical address; the only one on a pty)",
    )
    p.add_argument("--meters", type=int, default=4, help="how many meters (default 4)")
    p.add_argument("--port", type=int, default=0, help="TCP port, the first of them for the wrapper (0: any free)")
    p.add_argument("--fault", action="append", default=[], metavar="WHO:NAME[=VALUE]")
    return p


def split_faults(specs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(faults the model takes, WHO of each ``refuse``)."""
    model, refused = [], []
    for spec in specs:
        who, _, name = spec.partition(":")
        if name == "refuse":
            refused.append(who)
        else:
            model.append(spec)
    return model, refused


def make_meters(args: argparse.Namespace) -> tuple[list[VirtualMeter], set[str]]:
    """The meters asked for (faults applied, physical addresses 16 + N) and the serials that refuse."""
    if args.meters < 1:
        raise InputError(f"--meters is at least 1; got {args.meters}")
    model_faults, refusing = split_faults(args.fault)
    spec = argparse.Namespace(prefix="SIM", meters=args.meters, tariffs=4, prosumers=0, fault=model_faults)
    meters = build_meters(spec)
    refused = set()
    for who in refusing:
        found = [m.serial for m in meters if who in (m.serial, str(m.address))]
        if not found:
            raise InputError(f"fault {who}:refuse: no simulated meter {who!r} (serials {meters[0].serial}..)")
        refused.update(found)
    for meter in meters:
        meter.address = PHYSICAL_BASE + int(meter.address)
    return meters, refused


def config_snippet(urls: dict[str, str], meters: list[VirtualMeter], framing: str, transport: str) -> str:
    """TOML to poll these meters as the public client, in the keys of the DLMS driver's settings.

    One bus: ``dlms-tcp`` (wrapper: each meter at its own ``host``; HDLC over TCP: by ``address``) or
    ``dlms-hdlc`` on the pty.
    """
    first = urls[meters[0].serial]
    kind = "dlms-hdlc" if transport == "pty" else "dlms-tcp"
    url = first if transport == "pty" else "tcp://" + first.split("://", 1)[1]
    lines = ["[[buses]]", 'name = "sim-dlms"', f'kind = "{kind}"', f'url = "{url}"']
    if transport == "pty":
        lines.append(f"baudrate = {HDLC_BAUDRATE}")
    lines += ['timeout = "2s"', 'schedule = "30s"', "[buses.dlms]", f'transport = "{framing}"']
    lines += [f"client = {PUBLIC}", 'authentication = "none"', ""]
    for meter in meters:
        lines += ["[[meters]]", f'serial = "{meter.serial}"', 'bus = "sim-dlms"', f"tariffs = {meter.tariffs}"]
        if framing == "hdlc":
            lines.append(f"address = {meter.address}")
        else:
            lines += ["[meters.dlms]", f'host = "{urls[meter.serial].split("://", 1)[1]}"']
        lines.append("")
    return "\n".join(lines)


async def serve(args: argparse.Namespace, meters: list[VirtualMeter], refused: set[str]) -> None:
    """Run the simulator until cancelled, printing where it listens and the configuration."""
    framing = args.framing or ("hdlc" if args.transport == "pty" else "wrapper")
    if args.transport == "pty" and framing == "wrapper":
        raise InputError("the TCP wrapper runs over tcp only; on a pty use --framing hdlc")
    simulator: Service
    if framing == "wrapper":
        wrapper = DlmsWrapperSimulator(meters, port=args.port, refused=refused)
        simulator = wrapper
    else:
        line = DlmsHdlcSimulator(
            meters, refused=refused, transport=args.transport, port=args.port, baudrate=HDLC_BAUDRATE
        )
        simulator = line
    async with simulator:
        if framing == "wrapper":
            urls = {m.serial: wrapper.url(m.serial) for m in meters}
        else:
            urls = dict.fromkeys((m.serial for m in meters), line.url)
        where = ", ".join(dict.fromkeys(urls.values()))
        print(f"{len(meters)} simulated dlms meter(s) ({framing}) at {where}; Ctrl-C stops them", flush=True)
        print("\n# configuration to poll them:\n" + config_snippet(urls, meters, framing, args.transport), flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the simulated meters until SIGINT/SIGTERM; 2 on bad options."""
    args = parser().parse_args(argv)
    try:
        meters, refused = make_meters(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        task = asyncio.ensure_future(serve(args, meters, refused))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
    except (InputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("simulators stopped", file=sys.stderr)
    return 0


__all__ = ["config_snippet", "main", "make_meters", "parser"]
