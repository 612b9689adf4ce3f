"""An in-memory `ContextLoader` for unit tests of the pipeline's logic (the real stores have contract tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from amr.core.domain import CHANNELS, StoredReading
from amr.validation import BatchResult, ContextRequest


class MemoryLoader:
    """Keeps accepted readings in a dict and answers the pipeline's context queries."""

    def __init__(self) -> None:
        self.readings: dict[tuple[int, int, datetime], StoredReading] = {}

    def load_context(self, requests: Sequence[ContextRequest]) -> dict[tuple[int, int], list[StoredReading]]:
        found: dict[tuple[int, int], dict[datetime, StoredReading]] = {}
        for request in requests:
            series = sorted(
                (r for (m, t, _), r in self.readings.items() if (m, t) == (request.meter_id, request.tariff)),
                key=lambda r: r.ts,
            )
            chosen = {r.ts: r for r in series if request.start <= r.ts <= request.end}
            for channel in CHANNELS:
                before = [r for r in series if r.ts < request.start and r.values.get(channel) is not None]
                after = [r for r in series if r.ts > request.end and r.values.get(channel) is not None]
                if before:
                    chosen[before[-1].ts] = before[-1]
                if after:
                    chosen[after[0].ts] = after[0]
            if chosen:
                found[(request.meter_id, request.tariff)] = list(chosen.values())
        return found

    def apply(self, result: BatchResult) -> None:
        for reading in [*result.accepted, *result.flag_updates.values()]:
            self.readings[(reading.meter_id, reading.tariff, reading.ts)] = reading

    def series(self, meter_id: int, tariff: int = 0) -> list[StoredReading]:
        return sorted(
            (r for (m, t, _), r in self.readings.items() if (m, t) == (meter_id, tariff)), key=lambda r: r.ts
        )
