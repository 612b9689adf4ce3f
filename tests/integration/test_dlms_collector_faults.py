"""DLMS meters' faults through the collector into the real PostgreSQL: a lower reading refused with its
reason, a register that wrapped through zero accepted and flagged, a drifting clock recorded.

Three simulated meters on the TCP wrapper, polled twice by the collector's sweep; the simulator's
time runs two hours behind the wall clock for the first sweep and with it for the second (the
readings take the meters' own clocks, so both sweeps' readings are in the past).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amr.app import App
from amr.collector.collector import Collector
from amr.collector.result import PollResult
from amr.config import config_from_dict
from amr.core.domain import Channel, Flag
from amr.store import Store
from simulators.dlms import DlmsWrapperSimulator
from simulators.model import Faults, VirtualMeter

DRIFT = timedelta(seconds=90)
LOWER_BY_WH = 100_000  # far more than two hours of a 1.5 kW load


@pytest.mark.postgres
def test_lower_is_refused_wrap_is_flagged_and_drift_is_recorded(
    postgres_url: str, postgres_store: Store, tmp_path: Path
) -> None:
    from tests.conftest import _clean

    _clean(postgres_store)
    started = datetime.now(UTC)
    behind = {"by": timedelta(hours=2)}  # the simulator's time: the wall clock minus this
    meters = {
        "DL-LOWER": VirtualMeter("DL-LOWER", address=17, tariffs=1, start=started - timedelta(hours=3)),
        # starts 90 min before its register wraps: over the top at the first sweep, through zero by the second
        "DL-WRAP": VirtualMeter("DL-WRAP", address=18, tariffs=1, start=started - timedelta(hours=3),
                                faults=Faults(wrap_after=timedelta(minutes=90))),
        "DL-DRIFT": VirtualMeter("DL-DRIFT", address=19, tariffs=1, start=started - timedelta(hours=3),
                                 faults=Faults(clock_drift=DRIFT)),
    }

    async def scenario() -> list[list[PollResult]]:
        async with DlmsWrapperSimulator(list(meters.values()), clock=lambda: datetime.now(UTC) - behind["by"]) as sim:
            config = config_from_dict({
                "database": {"url": postgres_url},
                "site": {"timezone": "Europe/Moscow"},
                "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                "buses": [{"name": "dlms", "kind": "dlms-tcp", "url": sim.url("DL-LOWER"), "timeout": "2s",
                           "retries": 0}],
                "meters": [{"serial": s, "bus": "dlms", "address": m.address, "tariffs": 1,
                            "dlms": {"host": sim.url(s)}} for s, m in meters.items()],
            }, environ={}, file=tmp_path / "amr.toml")
            with App.open(config) as app:
                collector = Collector(app)
                await collector.start(schedule=False)
                try:
                    first = await collector.poll_all()
                    behind["by"] = timedelta(0)
                    meters["DL-LOWER"].faults = Faults(lower_by_wh=LOWER_BY_WH)
                    second = await collector.poll_all()
                finally:
                    await collector.stop()
        return [first, second]

    first, second = asyncio.run(asyncio.wait_for(scenario(), 60))
    for sweep in (first, second):
        assert all(r.ok for r in sweep), [(r.serial, r.error) for r in sweep]
    after = {r.serial: r for r in second}

    # lower: refused, kept with its reason and what the meter said
    assert after["DL-LOWER"].as_dict()["rejected"] == {"lower_than_previous": 1}
    [refused] = postgres_store.rejected(meter_serial="DL-LOWER")
    assert refused.reasons == ("lower_than_previous",) and refused.source == "askue:dlms"
    said = after["DL-LOWER"].values
    assert said is not None and refused.values[Channel.A_PLUS] == said.tariffs[0][Channel.A_PLUS]

    # wrap: accepted, flagged as a rollover
    with App.open(config_for(postgres_url, tmp_path)) as app:
        stored = app.store.readings([app.meters["DL-WRAP"].id], tariff=0)
        lower_stored = app.store.readings([app.meters["DL-LOWER"].id], tariff=0)
    assert [r.value(Channel.A_PLUS) for r in stored] == [
        r.values.tariffs[0][Channel.A_PLUS] for r in (first[1], after["DL-WRAP"]) if r.values is not None
    ]
    assert stored[0].value(Channel.A_PLUS) > stored[1].value(Channel.A_PLUS)  # type: ignore[operator]
    assert not stored[0].flags & Flag.ROLLOVER and stored[1].flags & Flag.ROLLOVER
    assert len(lower_stored) == 1  # only the first sweep's

    # drift: the reading is at the meter's clock, and the drift it showed is kept with it
    drifting = after["DL-DRIFT"]
    assert drifting.values is not None and drifting.values.meter_time is not None
    shown = drifting.readings[0].payload["clock_drift_s"]
    assert isinstance(shown, float | int) and abs(shown - DRIFT.total_seconds()) < 5
    assert drifting.readings[0].ts == drifting.values.meter_time
    assert abs(drifting.values.meter_time - drifting.values.polled_at - DRIFT) < timedelta(seconds=5)
    assert abs(refused.payload["clock_drift_s"]) < 5  # the refused reading keeps its payload too


def config_for(database: str, tmp_path: Path) -> Any:
    meters = [{"serial": s} for s in ("DL-LOWER", "DL-WRAP", "DL-DRIFT")]
    return config_from_dict({"database": {"url": database}, "meters": meters}, environ={}, file=tmp_path / "x.toml")
