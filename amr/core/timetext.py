"""Moments as a person reads them: in the site's time zone, with the offset shown.

Machine fields (JSON ``timestamp``) stay UTC ISO 8601; these are for messages, tables and
log lines a dispatcher reads beside tables in local time.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def local_text(ts: datetime, tz: tzinfo = UTC) -> str:
    """``2026-01-31 14:30+03:00``: the moment in `tz`, to the minute (to the second when it has
    seconds), with its UTC offset."""
    moment = ts.astimezone(tz)
    spec = "minutes" if moment.second == 0 and moment.microsecond == 0 else "seconds"
    return moment.isoformat(sep=" ", timespec=spec)


def zone_label(ts: datetime, tz: tzinfo) -> str:
    """The zone's abbreviation at `ts` (``MSK``), or its offset (``+05``) where it has none."""
    return ts.astimezone(tz).tzname() or ts.astimezone(tz).strftime("%z")


__all__ = ["local_text", "zone_label"]
