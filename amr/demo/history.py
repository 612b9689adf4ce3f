"""Back-filled history, so the dashboard's charts have data at once.

Each virtual meter's model starts `HISTORY_DAYS` ago; its registers are read at every local
midnight until `PROFILE_DAYS` ago and every 30 minutes after that, up to now (a meter that went
silent: up to when it did). The values go through the same normalisation as a driver's (CT × VT,
tariff zones, source) and the one validation pipeline, so the history has what live data has:
MB-104's misreadings are refused (``lower_than_previous``) and ME-302's wrap is flagged
``rollover``. The models are then at "now" and the live simulators carry on from there.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from amr.app import App
from amr.core.domain import IncomingReading, Source
from amr.demo.field import HISTORY_DAYS, PROFILE_DAYS, Spec, lower
from amr.drivers.base import MeterValues
from amr.drivers.normalise import normalise
from amr.validation.pipeline import Summary

HALF_HOUR = timedelta(minutes=30)
GLITCH_EVERY = 13  # MB-104 misreports at every 13th half-hour of the profile days


def moments(now: datetime, tz: ZoneInfo, until: datetime) -> list[datetime]:
    """Daily local midnights, then half-hours, from `HISTORY_DAYS` ago up to `until` (UTC)."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=HISTORY_DAYS)
    profile_from = today - timedelta(days=PROFILE_DAYS)
    found = [
        datetime.combine(first + timedelta(days=n), time(), tz).astimezone(UTC)
        for n in range((profile_from - first).days)
    ]
    moment = datetime.combine(profile_from, time(), tz).astimezone(UTC)
    while moment <= until:
        found.append(moment)
        moment += HALF_HOUR
    return [m for m in found if m <= until]


def start_of_history(now: datetime, tz: ZoneInfo) -> datetime:
    """Where the models start: local midnight `HISTORY_DAYS` ago, a minute early."""
    first = now.astimezone(tz).date() - timedelta(days=HISTORY_DAYS)
    return datetime.combine(first, time(), tz).astimezone(UTC) - timedelta(minutes=1)


def backfill(app: App, meters: list[Spec], now: datetime) -> Summary:
    """Write the history of every meter through the pipeline; the counts."""
    tz = app.config.site.tz
    summary = Summary()
    for spec in meters:
        until = now - spec.silent_since if spec.silent_since else now - timedelta(minutes=1)
        meter = app.meters.get(spec.serial)
        batch: list[IncomingReading] = []
        for index, moment in enumerate(moments(now, tz, until)):
            registers = spec.virtual.registers(moment)
            if spec.glitch_wh and moment >= now - timedelta(days=1) and index % GLITCH_EVERY == 0:
                lower(registers, spec.glitch_wh)
            values = MeterValues(spec.serial, registers, moment, raw={"demo": "history"})
            batch += normalise(values, meter, Source(spec.source))
        summary.add(app.ingestor.submit(batch))
        spec.virtual.registers(now)  # the model catches up to now (the meter kept counting)
    return summary


__all__ = ["backfill", "moments", "start_of_history"]
