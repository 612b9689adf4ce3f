"""`amr sim iec62056-21`: virtual IEC 62056-21 meters; over TCP a converter at a fixed speed."""

from __future__ import annotations

import argparse

from amr.drivers.serial_simulate import serial_meters_hook


def iec_fixed_baud(args: argparse.Namespace) -> int | None:
    """IEC 62056-21 at a fixed speed (a converter): ``--baud``, by default 9600 over TCP; None: the
    standard 300 baud sign-on with a switch to the meter's offer (a pty without ``--baud``)."""
    if args.baud:
        return int(args.baud)
    return 9600 if args.transport == "tcp" else None


def _bus_lines(_kind: str, args: argparse.Namespace) -> list[str]:
    fixed = iec_fixed_baud(args)
    lines = [f"baudrate = {fixed or 300}", "bytesize = 7", 'parity = "E"']
    return [*lines, "baud_switch = false"] if fixed else lines


IEC62056_21 = serial_meters_hook("simulators.serial_meters:IecSimulator", iec_fixed_baud, _bus_lines)
