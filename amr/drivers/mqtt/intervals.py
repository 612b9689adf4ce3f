"""Interval values in MQTT payloads: a gateway that publishes a meter's load profile.

In the ``amr`` payload, beside (or instead of) ``tariffs``, a list ``intervals``::

    {"meter": "0012345678", "unit": "kWh",
     "intervals": [{"start": "2026-03-01T12:00:00+03:00", "length": 1800,
                    "a_plus": "0.512", "r_plus": "0.120", "flags": ["power_failure"]}]}

``start`` is the interval's start (ISO 8601 with an offset, or epoch seconds), ``length`` its length
(seconds, or a duration such as ``"30m"``: 15, 30 or 60 minutes, the start on a boundary of it),
the channels the energy **in** the interval in the payload's unit (exact: at most whole Wh), and
``flags`` (optional) what the meter marked: ``power_failure``, ``clock_changed``, ``partial``,
``overflow``, ``invalid``. A bad interval is left out and named in the message's errors; the
others are kept. The values become `ProfileRecord` (meter side, as sent) in `MeterValues.profile`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from amr.core.domain import Channel
from amr.core.durations import parse_duration
from amr.core.intervals import INTERVAL_LENGTHS, ProfileFlag, ProfileRecord, aligned
from amr.errors import InputError

FLAG_NAMES: dict[str, ProfileFlag] = {f.name.lower(): f for f in ProfileFlag if f.name and f is not ProfileFlag.NONE}


def decode_intervals(
    items: object, units: tuple[str, str], channels: dict[str, Channel], errors: dict[str, str]
) -> list[ProfileRecord]:
    """The intervals of an ``intervals`` list; each bad one is named in `errors` and left out."""
    from amr.drivers.mqtt.payloads import PayloadError, energy_wh, parse_time, plain

    if not isinstance(items, list):
        errors["intervals"] = 'give "intervals" as a list of {"start", "length", channels}'
        return []
    found: list[ProfileRecord] = []
    for index, item in enumerate(items):
        where = f"intervals {index}"
        try:
            if not isinstance(item, dict):
                raise PayloadError("an interval is an object with start, length and channels")
            start = parse_time(item.get("start"))
            if start is None:
                raise PayloadError(f"start {plain(item.get('start'))} needs a UTC offset, e.g. +03:00")
            length = _length(item.get("length"))
            if not aligned(start, length):
                raise PayloadError(f"start {start.isoformat()} is not on a boundary of {length}")
            energy: dict[Channel, int] = {}
            flags = ProfileFlag.NONE
            for key, value in item.items():
                if key in ("start", "length"):
                    continue
                if key == "flags":
                    flags = _flags(value)
                elif key in channels:
                    channel = channels[key]
                    if value is not None:
                        unit = units[channel in (Channel.R_PLUS, Channel.R_MINUS)]
                        energy[channel] = energy_wh(value, unit, exact=True)
                else:
                    raise PayloadError(f"unknown key {plain(key)} in an interval")
            if not energy:
                raise PayloadError("an interval without any channel value")
            found.append(ProfileRecord(start=start, length=length, energy=energy, flags=flags, raw=str(item)))
        except PayloadError as exc:
            errors[where] = str(exc)
    return found


def _length(value: Any) -> timedelta:
    from amr.drivers.mqtt.payloads import PayloadError, plain

    seconds = isinstance(value, int) and not isinstance(value, bool)
    try:
        length = timedelta(seconds=value) if seconds else parse_duration(value)
    except (InputError, TypeError, ValueError):
        raise PayloadError(f"length {plain(value)} is not a duration: give seconds (1800) or \"30m\"") from None
    if length not in INTERVAL_LENGTHS:
        raise PayloadError(f"length {length} is not 15, 30 or 60 minutes")
    return length


def _flags(value: Any) -> ProfileFlag:
    from amr.drivers.mqtt.payloads import PayloadError, plain

    if not isinstance(value, list):
        raise PayloadError('give "flags" as a list, e.g. ["power_failure"]')
    flags = ProfileFlag.NONE
    for name in value:
        if not isinstance(name, str) or name.lower() not in FLAG_NAMES:
            raise PayloadError(f"unknown flag {plain(name)}; use {', '.join(FLAG_NAMES)}")
        flags |= FLAG_NAMES[name.lower()]
    return flags
