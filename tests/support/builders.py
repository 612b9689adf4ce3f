"""Small builders for meters and readings used across tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from amr.config import config_from_dict
from amr.core.domain import Channel, IncomingReading, Source, wh_from_kwh
from amr.core.meters import Meter

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def meters(*specs: dict[str, Any], ids: bool = True) -> list[Meter]:
    """Meters from config-like dicts (site zone Europe/Moscow), numbered from 1."""
    config = config_from_dict({"site": {"timezone": "Europe/Moscow"}, "meters": list(specs)}, environ={})
    built = config.meter_objects()
    if ids:
        from dataclasses import replace

        built = [replace(m, id=i + 1) for i, m in enumerate(built)]
    return built


def reading(
    meter: str,
    at: datetime | float,
    a_plus: str | Decimal | None = None,
    *,
    tariff: int = 0,
    a_minus: str | None = None,
    r_plus: str | None = None,
    r_minus: str | None = None,
    source: Source = Source.IMPORT,
) -> IncomingReading:
    """An incoming reading; `at` may be hours after T0; values in kWh."""
    ts = at if isinstance(at, datetime) else T0 + timedelta(hours=at)
    values = {
        Channel.A_PLUS: a_plus,
        Channel.A_MINUS: a_minus,
        Channel.R_PLUS: r_plus,
        Channel.R_MINUS: r_minus,
    }
    return IncomingReading(
        meter=meter,
        ts=ts,
        tariff=tariff,
        values={c: None if v is None else wh_from_kwh(v) for c, v in values.items()},
        source=source,
        payload={"test": True},
        received_at=NOW,
    )
