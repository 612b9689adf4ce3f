"""The settings every serial-line bus kind shares: character framing, speed and turnaround pause.

A light module (no driver, no pyserial): the configuration loader validates a bus through it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from amr.config import BusSettings, Duration


class SerialBusSettings(BusSettings):
    """``baudrate``, ``bytesize``, ``parity``, ``stopbits`` and ``frame_pause`` of a serial line."""

    baudrate: int = Field(9600, ge=300, le=921600)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    frame_pause: Duration | None = None  # None: the 3.5-character gap at the line's speed
