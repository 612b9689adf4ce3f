"""Relay commands carried out by the collector against the DLMS simulator, into a real store.

A command is claimed, run on the meter's bus, its state read back and stored; a meter that does not
answer is tried again until the deadline; an answer that comes late, a collector stopped in the
middle, or two collectors at once never make the meter act twice (the simulator counts ACTIONs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from amr.app import App
from amr.collector.collector import Collector
from amr.collector.operations import Operations
from amr.config import Config, config_from_dict
from amr.core.domain import Channel
from amr.store import relay_commands as commands
from simulators.dlms import DlmsWrapperSimulator
from simulators.dlms import operations as sim_operations
from simulators.dlms.server import DEFAULT_PASSWORDS
from simulators.model import Faults, VirtualMeter


def virtual(serial: str, faults: Faults | None = None) -> VirtualMeter:
    return VirtualMeter(serial, address=17, start=datetime.now(UTC) - timedelta(hours=1), faults=faults or Faults())


def config_for(url: str, sim: DlmsWrapperSimulator, tmp_path: Path, timeout: str = "1s",
               **relay: Any) -> Config:
    security = {"client": 48, "authentication": "lls", "password": DEFAULT_PASSWORDS[48]}
    return config_from_dict({
        "database": {"url": url},
        "site": {"timezone": "Europe/Moscow"},
        "collector": {"buffer": str(tmp_path / f"buffer-{id(relay)}.sqlite")},
        "relay": {"check_every": "100ms", "retry": "300ms", **relay},
        "buses": [{"name": "dl", "kind": "dlms-tcp", "url": sim.url(sim.meters[0].serial), "timeout": timeout,
                   "retries": 0, "dlms": security}],
        "meters": [{"serial": m.serial, "object": "Дом 1", "bus": "dl", "address": 17 + n,
                    "dlms": {"host": sim.url(m.serial)}} for n, m in enumerate(sim.meters)],
    }, environ={})


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[Operations]:
    app = await asyncio.to_thread(App.open, config)
    collector = Collector(app)
    await collector.start(schedule=False, push=False)
    try:
        yield Operations(collector)
    finally:
        await collector.stop()
        app.close()


def queue(ops: Operations, serial: str, action: str, seconds: float = 3600) -> commands.RelayCommand:
    now = datetime.now(UTC)
    meter = ops.collector.app.meters[serial]
    return commands.enqueue(ops.store, meter.id, serial, action, "долг", "disp", now, now + timedelta(seconds=seconds))


async def until_final(ops: Operations, command_id: int, limit: float = 20) -> commands.RelayCommand:
    loop = asyncio.get_running_loop()
    ends = loop.time() + limit
    while loop.time() < ends:
        await ops.relay_turn()
        await ops.settle()
        found = commands.get(ops.store, command_id)
        assert found is not None
        if found.status in commands.FINAL:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"command {command_id} still not over after {limit} s")


def test_disconnect_is_carried_out_read_back_stored_and_the_energy_stops(tmp_path: Path) -> None:
    meter = virtual("CR1")

    async def scenario() -> commands.RelayCommand:
        async with DlmsWrapperSimulator([meter]) as sim:
            config = config_for(f"sqlite:///{tmp_path / 'a.sqlite'}", sim, tmp_path)
            async with running(config) as ops:
                return await until_final(ops, queue(ops, "CR1", "disconnect").id)

    before = sim_operations.ACTIONS.get("CR1", 0)
    done = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert (done.status, done.state, done.supplied, done.acted, done.attempts) == ("done", "disconnected", False,
                                                                                   True, 1)
    assert sim_operations.ACTIONS["CR1"] - before == 1
    later = datetime.now(UTC) + timedelta(hours=2)
    assert meter.registers(later)[0][Channel.A_PLUS] == meter.registers(later + timedelta(hours=3))[0][Channel.A_PLUS]


def test_a_silent_meter_is_tried_until_the_deadline_and_the_command_expires_unsent(tmp_path: Path) -> None:
    meter = virtual("CR2", Faults(silent=True))

    async def scenario() -> commands.RelayCommand:
        async with DlmsWrapperSimulator([meter]) as sim:
            config = config_for(f"sqlite:///{tmp_path / 'b.sqlite'}", sim, tmp_path, timeout="300ms")
            async with running(config) as ops:
                return await until_final(ops, queue(ops, "CR2", "disconnect", seconds=1.8).id)

    expired = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert expired.status == "expired" and expired.attempts >= 2 and expired.state is None
    assert expired.error_code == "timeout" and expired.error is not None and "deadline" in expired.error
    assert sim_operations.ACTIONS.get("CR2", 0) == 0 and meter.relay == "connected"


def test_a_late_answer_is_retried_and_the_retry_finds_the_relay_moved_without_acting_again(tmp_path: Path) -> None:
    meter = virtual("CR3", Faults(relay_delay=1.0))

    async def scenario() -> commands.RelayCommand:
        async with DlmsWrapperSimulator([meter]) as sim:
            config = config_for(f"sqlite:///{tmp_path / 'c.sqlite'}", sim, tmp_path, timeout="400ms")
            async with running(config) as ops:
                return await until_final(ops, queue(ops, "CR3", "disconnect").id)

    before = sim_operations.ACTIONS.get("CR3", 0)
    done = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert (done.status, done.state, done.acted) == ("done", "disconnected", False)
    assert done.attempts == 2
    assert sim_operations.ACTIONS["CR3"] - before == 1


def test_after_a_collector_stopped_mid_command_the_next_one_reads_the_relay_and_does_not_repeat(
    tmp_path: Path,
) -> None:
    meter = virtual("CR4")

    async def scenario() -> commands.RelayCommand:
        async with DlmsWrapperSimulator([meter]) as sim:
            config = config_for(f"sqlite:///{tmp_path / 'd.sqlite'}", sim, tmp_path, lease="500ms")
            async with running(config) as ops:
                command = queue(ops, "CR4", "disconnect")
                [held] = commands.claim(ops.store, [command.meter_id], "collector:gone", datetime.now(UTC),
                                        timedelta(milliseconds=500))
                meter.switch("disconnected")  # the stopped collector's ACTION had reached the meter
                assert await ops.relay_turn() == []  # its lease still holds
                await asyncio.sleep(0.6)
                return await until_final(ops, held.id)

    before = sim_operations.ACTIONS.get("CR4", 0)
    done = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert (done.status, done.state, done.acted, done.attempts) == ("done", "disconnected", False, 2)
    assert sim_operations.ACTIONS.get("CR4", 0) == before


def test_two_collectors_on_postgresql_carry_out_every_command_exactly_once(tmp_path: Path, postgres_store: Any) -> None:
    from tests.conftest import _clean

    _clean(postgres_store)
    url = postgres_store.engine.url.render_as_string(hide_password=False)
    meters = [virtual("CR5"), virtual("CR6")]

    async def scenario() -> list[commands.RelayCommand]:
        async with DlmsWrapperSimulator(meters) as sim:
            first, second = config_for(url, sim, tmp_path), config_for(url, sim, tmp_path)
            async with running(first) as one, running(second) as two:
                queued = [queue(one, m.serial, action) for action in ("disconnect", "reconnect") * 2 for m in meters]
                loop = asyncio.get_running_loop()
                ends = loop.time() + 40
                while loop.time() < ends:
                    await asyncio.gather(one.relay_turn(), two.relay_turn())
                    await asyncio.gather(one.settle(), two.settle())
                    found = [commands.get(one.store, c.id) for c in queued]
                    if all(f is not None and f.status in commands.FINAL for f in found):
                        return [f for f in found if f is not None]
                    await asyncio.sleep(0.05)
                raise AssertionError("commands still under way")

    before = {m.serial: sim_operations.ACTIONS.get(m.serial, 0) for m in meters}
    found = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert [c.status for c in found] == ["done"] * 8 and all(c.attempts == 1 and c.acted for c in found)
    assert {m.serial: sim_operations.ACTIONS[m.serial] - before[m.serial] for m in meters} == {"CR5": 4, "CR6": 4}
    workers = {c.claimed_by for c in found}
    assert len(workers) >= 1 and all(w is not None and w.startswith("collector:") for w in workers)
    trail = [r for r in postgres_store.audit_log(limit=100) if r["action"].endswith("_done")]
    assert sorted(r["details"]["command"] for r in trail) == sorted(c.id for c in found)
