"""The collector back-fills in the bus's background turns while polls go on (real pty, SQLite)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from amr.app import App
from amr.collector.collector import Collector
from amr.config import config_from_dict
from amr.core.domain import Channel
from amr.core.intervals import floor_interval
from amr.store.backfill_state import BackfillState
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.serial_meters import MercurySimulator


async def scenario(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    meters = [VirtualMeter(f"4100003{i}", address=30 + i, start=now - timedelta(days=3)) for i in range(2)]
    profiles = {m.serial: ProfileMemory(m, start=now - timedelta(days=3)) for m in meters}
    async with MercurySimulator(meters, profiles=profiles) as sim:  # at 9600 baud on the pty
        config = config_from_dict(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
                "site": {"timezone": "Europe/Moscow"},
                "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                "buses": [{"name": "line", "kind": "mercury230", "url": sim.url, "timeout": "500ms"}],
                "meters": [{"serial": m.serial, "bus": "line", "address": m.address} for m in meters],
                "backfill": {"first": "6h", "chunk": "2h", "every": "1h"},
            },
            {},
        )
        with App.open(config) as app:
            collector = Collector(app)
            await collector.start()
            try:
                horizon = floor_interval(datetime.now(UTC))
                state = BackfillState(app.store)
                polls = []
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    polls.append(await collector.poll_now(meters[0].serial))  # polls go on meanwhile
                    done = state.load()
                    if all(
                        done.get(m.serial, {}).get(Channel.A_PLUS) is not None
                        and done[m.serial][Channel.A_PLUS].read_until >= horizon
                        for m in meters
                    ):
                        break
                else:
                    raise AssertionError(f"back-fill did not finish: {state.load()}")
                assert all(p.ok for p in polls)
                for m in meters:
                    stored = app.store.intervals(m.serial, channels=[Channel.A_PLUS])
                    begin = floor_interval(now - timedelta(hours=6))
                    held = profiles[m.serial].times(horizon)[:-1]
                    assert [v.start for v in stored] == [t for t in held if t >= begin]
            finally:
                await collector.stop()


def test_collector_backfills_without_starving_polls(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(scenario(tmp_path), 60))
