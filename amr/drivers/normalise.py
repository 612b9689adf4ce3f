"""The same normalisation for every driver: register values → primary-side readings for the pipeline.

Scale and units are already applied by the driver (Wh/varh). Here: CT × VT ratio in
force at the reading's time, tariff zones, timestamp (the meter's clock where it
reports one, with the drift kept in the payload; else the poll time), source.
"""

from __future__ import annotations

from datetime import timedelta

from amr.core.domain import IncomingReading, Source
from amr.core.meters import Meter
from amr.drivers.base import MeterValues


def normalise(values: MeterValues, meter: Meter | None, source: Source) -> list[IncomingReading]:
    """One incoming reading per tariff zone the meter reported."""
    ts = values.meter_time or values.polled_at
    payload: dict[str, object] = {"polled_at": values.polled_at.isoformat(), **values.raw}
    if values.meter_time is not None:
        drift: timedelta = values.meter_time - values.polled_at
        payload["clock_drift_s"] = round(drift.total_seconds(), 3)
    if values.errors:
        payload["errors"] = dict(values.errors)
    readings = []
    # A message or answer that yielded no value at all is kept as a malformed reading naming why.
    tariffs = values.tariffs or ({0: {}} if values.errors else {})
    nothing = not any(v is not None for channels in tariffs.values() for v in channels.values())
    problems = tuple(f"{where}: {why}" for where, why in values.errors.items()) if nothing else ()
    for tariff, channels in sorted(tariffs.items()):
        if meter is None:
            primary = dict(channels)
        else:
            ratio = meter.ratio_at(ts)
            primary = {c: None if v is None else round(v * ratio) for c, v in channels.items()}
        readings.append(
            IncomingReading(
                meter=values.serial,
                ts=ts,
                tariff=tariff,
                values=primary,
                source=source,
                payload={**payload, "register_wh": {c.value: v for c, v in channels.items()}},
                problems=problems,
                received_at=values.polled_at,
            )
        )
    return readings
