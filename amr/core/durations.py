"""Durations: seconds (``30``, ``0.5``) or a number with a unit (``"500ms"``, ``"30s"``, ``"30m"``, ``"2h"``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator

from amr.errors import InputError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_duration(value: object) -> timedelta:
    """A `timedelta` from seconds or a string such as "500ms" or "30m"."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise InputError(f'{value!r} is not a duration; write seconds or e.g. "500ms", "30m"')
    if isinstance(value, (int, float)):
        if value < 0:
            raise InputError(f"{value} is a negative duration; durations are 0 or more")
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            return timedelta(seconds=float(number) * _UNITS[unit or "s"])
    raise InputError(
        f'{value!r} is not a duration; write seconds (30) or a number with ms, s, m, h or d ("500ms", "30m")'
    )


def format_duration(value: timedelta) -> str:
    """A short human form: "500ms", "30s", "30m", "2h"."""
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _validated(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[timedelta, BeforeValidator(_validated)]
"""A configuration field holding a duration (pydantic): seconds or "500ms", "30s", "30m", "2h"."""
