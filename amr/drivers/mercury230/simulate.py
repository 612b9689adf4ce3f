"""`amr sim mercury230`: virtual Mercury 230 meters on a pty or a TCP socket."""

from __future__ import annotations

import argparse

from amr.drivers.serial_simulate import line_baud, serial_meters_hook


def _bus_lines(_kind: str, args: argparse.Namespace) -> list[str]:
    return [f"baudrate = {line_baud(args)}"]


MERCURY230 = serial_meters_hook("simulators.serial_meters:MercurySimulator", line_baud, _bus_lines)
