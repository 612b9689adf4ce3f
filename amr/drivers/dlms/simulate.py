"""`amr sim dlms`: virtual DLMS/COSEM (СПОДЭС) meters over the TCP wrapper, or HDLC over TCP or on a pty.

``--framing wrapper`` (the default over TCP) gives each meter its own port; ``--framing hdlc``
puts every meter on one line (a TCP port or a pty), chosen by its HDLC physical address 16 + N.
The printed configuration polls them as the public client (`dlms-tcp`, or `dlms-hdlc` on a pty).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from amr.drivers.spec import Serving, SimulatorHook
from amr.errors import InputError

PHYSICAL_BASE = 16  # HDLC physical addresses below 0x10 are reserved (IEC 62056-46)
BAUDRATE = 9600
PUBLIC = 16  # the public client's SAP: no authentication
_HOSTS: dict[str, str] = {}  # serial → "host:port" of a wrapper meter started in this process


def framing(kind: str, args: argparse.Namespace) -> str:
    """``--framing``, by default the wrapper over TCP and HDLC on a serial line."""
    chosen: str | None = args.framing
    if chosen is None:
        chosen = "hdlc" if kind == "dlms-hdlc" or args.transport == "pty" else "wrapper"
    if chosen == "wrapper" and (kind == "dlms-hdlc" or args.transport == "pty"):
        raise InputError("the TCP wrapper runs over tcp only; on a pty use --framing hdlc")
    return chosen


def _options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--framing",
        choices=["wrapper", "hdlc"],
        default=None,
        help="DLMS: the TCP wrapper (IEC 62056-47, a port per meter; the default over tcp) or HDLC "
        "(IEC 62056-46, the meters on one line by physical address 16 + N; the only one on a pty)",
    )


async def _serve(kind: str, args: argparse.Namespace, meters: Sequence[Any], stack: contextlib.AsyncExitStack
) -> Serving:
    from simulators.dlms.server import DlmsHdlcSimulator, DlmsWrapperSimulator

    chosen = framing(kind, args)
    for meter in meters:
        meter.address = PHYSICAL_BASE + int(meter.address)
    if chosen == "wrapper":
        wrapper = await stack.enter_async_context(DlmsWrapperSimulator(list(meters), port=args.port))
        for meter in meters:
            _HOSTS[meter.serial] = wrapper.url(meter.serial).split("://", 1)[1]
        return wrapper.url(meters[0].serial), asyncio.Event().wait()
    line = DlmsHdlcSimulator(list(meters), transport=args.transport, port=args.port, baudrate=BAUDRATE)
    await stack.enter_async_context(line)
    url = line.url if args.transport == "pty" or kind == "dlms-hdlc" else "tcp://" + line.url.split("://", 1)[1]
    return url, asyncio.Event().wait()


def _bus_lines(kind: str, args: argparse.Namespace) -> list[str]:
    lines = [f"baudrate = {BAUDRATE}"] if kind == "dlms-hdlc" else []
    return [*lines, f'dlms = {{ transport = "{framing(kind, args)}", client = {PUBLIC}, authentication = "none" }}']


def _meter_lines(_kind: str, meter: Any) -> list[str]:
    host = _HOSTS.get(meter.serial)
    return [f"address = {meter.address}", *([f'dlms = {{ host = "{host}" }}'] if host else [])]


DLMS = SimulatorHook(_options, _serve, _bus_lines, _meter_lines)
