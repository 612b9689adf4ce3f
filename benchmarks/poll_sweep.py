"""Poll sweep: simulated Modbus TCP meters polled once by the collector, against a naive sequential loop.

Every meter is its own Modbus TCP device on its own loopback port (``address =
"127.0.0.1:PORT/1"``), as a meter with its own IP address is in the field: the driver keeps
one connection and lock per device, so meters are read concurrently up to the bus's
``concurrency``. Every meter answers 50 ms late (``Faults(delay=0.05)``); 1 % never answer
(``Faults(silent=True)``: meters 50, 150, ...). The simulators run in separate processes
(at most `METERS_PER_PROCESS` meters each, meter i in process i % processes; a listening and
an accepted socket per meter there), so that no process comes near the limit of 20,000 open
files; the collector's process holds one client socket per meter.

Bus: timeout 300 ms (6 × the latency), 2 retries, backoff 50 ms (a dead meter's poll costs
3 × 0.3 + 0.05 + 0.1 = 1.05 s), concurrency 200 (more does not help on 2 cores: the event
loop is the limit; at 1,000 the loop's own lag turns answers into timeouts).

Prints:

* the naive baseline: a plain synchronous pymodbus `ModbusTcpClient` connect / read / close
  per meter, one after another, the same timeout, one attempt, no store; measured on a sample
  (the first 100 meters, one of them dead) and scaled;
* sweeps through the real collector path: `App.open`, `Collector.start(schedule=False,
  push=False)`, `poll_all`, `stop` (what ``amr collect --once`` does, without printing), every
  answer normalised, validated and written into an SQLite store. 2,000 meters, three sweeps,
  each as a ratio naive / collector (goal >= 80):

  - ``first``: a fresh store, nothing known of the meters, every connection opened;
  - ``restart``: the collector stopped and started again on the same store, as a restarted
    ``amr collect``: connections opened again, meter health (which meters failed) from the
    store; the collector starts the polls of meters that failed first, so the dead meters'
    timeouts run alongside the others' reads;
  - ``warm``: the next sweep of that collector, connections kept;

  10,000 meters, a first sweep (goal: under 60 s). The time is `poll_all`'s; setting up
  (store, meters, collector) is printed apart;
* per sweep: meters answered, dead meters failed, live meters failed (should be 0), retries
  of live meters (timeouts that were not the meter's), readings in the store, CPU seconds
  of the collector's process (and the part spent in garbage collection) and of the simulators;
* a diagnostic: the 10,000-meter first sweep again with the garbage collector off.

``--quick``: 1,000 and 2,000 meters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import resource
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from amr.app import App
from amr.collector.collector import Collector
from amr.config import Config, config_from_dict
from benchmarks.children import ServerGroup, serve_until_stdin_ends
from simulators.modbus import ModbusTcpSimulator
from simulators.model import Faults, VirtualMeter

ROOT = Path(__file__).resolve().parents[1]  # the subprocesses run `python -m benchmarks.<module>` here
HOST = "127.0.0.1"
DELAY = 0.05  # device latency, s
DEAD_EVERY = 100  # meter i is dead when i % 100 == 99: 1 %
TIMEOUT_MS = 300  # per request: 6 × the device latency, as in tests/integration/test_collector.py
RETRIES = 2
BACKOFF_MS = 50
CONCURRENCY = 200
METERS_PER_PROCESS = 2500  # a simulator process holds 2 sockets per meter: 5,000 fds
SIM_LIFETIME = 600.0  # a simulator process ends by itself after this long, whatever happens
PROFILE = "eastron-sdm630"  # one read of 8 input registers (fc 4 @ 0x48)


def _dead(index: int) -> bool:
    return index % DEAD_EVERY == DEAD_EVERY // 2


def _serial(index: int) -> str:
    return f"PS{index:05d}"


# --- the simulator processes ------------------------------------------------------------


async def _serve(part: int, parts: int, meters: int, delay: float) -> None:
    """Serve meters part, part + parts, ... below `meters`, each on its own port; print the ports; stop on stdin EOF."""
    now = datetime.now(UTC)
    sims = []
    for index in range(part, meters, parts):
        faults = Faults(silent=True) if _dead(index) else Faults(delay=delay)
        # start = now: the model does not first simulate a day minute by minute
        meter = VirtualMeter(_serial(index), address=1, tariffs=1, start=now, faults=faults)
        sim = ModbusTcpSimulator([meter], profile=PROFILE)
        await sim.start()
        sims.append(sim)
    await serve_until_stdin_ends(sims, SIM_LIFETIME)


class Simulators(ServerGroup):
    """The simulator processes for `meters` meters (meter i in process i % processes); `ports[i]` is meter i's."""

    def __init__(self, meters: int) -> None:
        super().__init__(
            meters, METERS_PER_PROCESS,
            lambda part, parts: [sys.executable, "-m", "benchmarks.poll_sweep", "--serve", str(part), str(parts),
                                 str(meters), "--delay", str(DELAY)],
            ROOT, "a simulator process gave no ports",
        )


# --- the naive baseline -------------------------------------------------------------------


def naive_loop(ports: Sequence[int], timeout: float) -> tuple[float, int, int]:
    """Connect, read the profile's 8 input registers, decode, close; meter after meter. Seconds, ok, failed."""
    ok = failed = 0
    started = time.perf_counter()
    for port in ports:
        client = ModbusTcpClient(HOST, port=port, timeout=timeout, retries=0)
        try:
            if not client.connect():  # type: ignore[no-untyped-call]
                failed += 1
                continue
            answer = client.read_input_registers(0x48, count=8, device_id=1)
            if answer.isError():
                failed += 1
            else:
                words = struct.pack(">8H", *answer.registers)
                struct.unpack(">4f", words)  # A+, A-, R+, R- in kWh / kvarh
                ok += 1
        except ModbusException:
            failed += 1
        finally:
            client.close()  # type: ignore[no-untyped-call]
    return time.perf_counter() - started, ok, failed


# --- the collector sweep -----------------------------------------------------------------


@dataclass
class Sweep:
    """One `poll_all` over every meter of the configuration."""

    label: str
    meters: int
    seconds: float
    cpu: float  # this process's CPU seconds during poll_all (event loop, writer thread, kernel)
    sim_cpu: float  # the simulator processes' CPU seconds meanwhile
    gc_seconds: float  # time this process spent in garbage collection
    answered: int
    dead_failed: int
    live_failed: int
    dead_answered: int
    extra_attempts: int  # attempts on answering meters beyond their first: timeouts that were not the meter's
    stored: int  # readings in the store after the sweep (cumulative over the collector's sweeps)
    poll_seconds: list[float]
    errors: dict[str, int]


class _GcClock:
    """Wall time spent in the cyclic garbage collector while installed."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, _: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


def sweep_config(ports: Sequence[int], directory: Path, concurrency: int) -> Config:
    bus = {
        "name": "field", "kind": "modbus-tcp", "url": f"tcp://{HOST}:{ports[0]}",
        "timeout": f"{TIMEOUT_MS}ms", "retries": RETRIES, "retry_backoff": f"{BACKOFF_MS}ms",
        "concurrency": concurrency,
    }
    meters = [
        {"serial": _serial(i), "bus": "field", "address": f"{HOST}:{port}/1", "profile": PROFILE}
        for i, port in enumerate(ports)
    ]
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{directory / 'amr.sqlite'}"},
        "buses": [bus],
        "meters": meters,
        "collector": {"buffer": str(directory / "buffer.sqlite")},
    }
    return config_from_dict(data, environ={}, file=directory / "amr.toml")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stored(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])


async def _sweeps(
    config: Config, sims: Simulators, labels: Sequence[str], gc_off: bool
) -> tuple[float, float, list[Sweep]]:
    """Open the app, start the collector, `poll_all` once per label, stop. Setup and stop seconds, sweeps.

    A label ``restart`` first stops the collector and starts a new one on a newly opened app, as
    a restarted ``amr collect`` does: new connections, meter health from the store."""
    sweeps: list[Sweep] = []
    setup = stop = 0.0
    remaining = list(labels)
    while remaining:
        started = time.perf_counter()
        app = await asyncio.to_thread(App.open, config)
        try:
            collector = Collector(app)
            await collector.start(schedule=False, push=False)
            setup = setup or time.perf_counter() - started
            try:
                sweeps.append(await _sweep(collector, config, sims, remaining.pop(0), gc_off))
                while remaining and remaining[0] != "restart":
                    sweeps.append(await _sweep(collector, config, sims, remaining.pop(0), gc_off))
            finally:
                stopping = time.perf_counter()
                await collector.stop()
                stop = stop or time.perf_counter() - stopping
        finally:
            app.close()
    return setup, stop, sweeps


async def _sweep(collector: Collector, config: Config, sims: Simulators, label: str, gc_off: bool) -> Sweep:
    clock = _GcClock()
    gc.callbacks.append(clock)
    if gc_off:
        gc.disable()
    cpu, sim_cpu, started = _cpu(), sims.cpu(), time.perf_counter()
    try:
        results = await collector.poll_all()
    finally:
        seconds, cpu, sim_cpu = time.perf_counter() - started, _cpu() - cpu, sims.cpu() - sim_cpu
        gc.enable()
        gc.callbacks.remove(clock)
    database = config.database.url.removeprefix("sqlite:///")
    errors: dict[str, int] = {}
    dead_failed = live_failed = dead_answered = answered = extra = 0
    for index, result in enumerate(results):
        if result.ok:
            answered += 1
            dead_answered += _dead(index)
            extra += result.attempts - 1
        else:
            errors[result.error_kind or "?"] = errors.get(result.error_kind or "?", 0) + 1
            if _dead(index):
                dead_failed += 1
            else:
                live_failed += 1
    return Sweep(
        label, len(results), seconds, cpu, sim_cpu, clock.total, answered, dead_failed, live_failed,
        dead_answered, extra, await asyncio.to_thread(_stored, Path(database)),
        [r.seconds for r in results if r.ok], errors,
    )


def collector_sweeps(
    sims: Simulators, meters: int, labels: Sequence[str], *, gc_off: bool = False
) -> tuple[float, float, list[Sweep]]:
    """`_sweeps` over the first `meters` simulated meters with a fresh store."""
    with tempfile.TemporaryDirectory(prefix="amr-bench-sweep-") as tmp:
        config = sweep_config(sims.ports[:meters], Path(tmp), CONCURRENCY)
        return asyncio.run(_sweeps(config, sims, labels, gc_off))


def _report(sweep: Sweep) -> None:
    dead = sum(_dead(i) for i in range(sweep.meters))
    times = sorted(sweep.poll_seconds)
    cuts = statistics.quantiles(times, n=100) if len(times) > 1 else times * 99
    print(
        f"  collector, {sweep.label + ',':<8} {sweep.meters:>6,} meters {sweep.seconds:8.2f} s  "
        f"({sweep.meters / sweep.seconds:,.0f} meters/s)"
    )
    print(
        f"      answered {sweep.answered:,}; dead failed {sweep.dead_failed} of {dead}; live failed "
        f"{sweep.live_failed}; dead answered {sweep.dead_answered}; retries of live meters {sweep.extra_attempts}; "
        f"readings in the store {sweep.stored:,}; errors {sweep.errors}"
    )
    print(
        f"      CPU: collector process {sweep.cpu:.2f} s ({sweep.cpu / sweep.meters * 1000:.2f} ms a meter, of which "
        f"GC {sweep.gc_seconds:.2f} s), simulators {sweep.sim_cpu:.2f} s; poll time (from poll_all, slot wait "
        f"included) median {cuts[49]:.2f} s, max {times[-1]:.2f} s"
    )


def run(quick: bool = False) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # the naive loop's timeouts are expected
    logging.getLogger("amr").setLevel(logging.ERROR)  # a warning per dead meter is expected
    small, large = (1000, 2000) if quick else (2000, 10_000)
    sample = 100
    timeout = TIMEOUT_MS / 1000
    worst = timeout * (RETRIES + 1) + sum(BACKOFF_MS / 1000 * 2**n for n in range(RETRIES))
    print(
        f"poll sweep benchmark: Modbus TCP meters, each on its own loopback port, {DELAY * 1000:.0f} ms latency, "
        f"1 % dead; bus timeout {TIMEOUT_MS} ms, retries {RETRIES}, backoff {BACKOFF_MS} ms "
        f"(a dead meter's poll: {worst:.2f} s), concurrency {CONCURRENCY}; SQLite store"
    )
    with Simulators(large) as sims:
        print(f"  {large:,} simulated meters in {len(sims.procs)} simulator process(es)")
        naive, ok, failed = naive_loop(sims.ports[:sample], timeout)
        per_meter = naive / sample
        print(
            f"  naive sequential loop       {naive:8.2f} s for {sample} meters ({ok} answered, {failed} dead, "
            f"one attempt each): {per_meter * 1000:.1f} ms a meter; scaled to {small:,}: {per_meter * small:.1f} s"
        )
        setup, stop, sweeps = collector_sweeps(sims, small, ["first", "restart", "warm"])
        print(f"  {small:,} meters: store, meters and collector set up in {setup:.2f} s; stopped in {stop:.2f} s")
        for sweep in sweeps:
            _report(sweep)
        ratios = ", ".join(f"{sweep.label} {per_meter * small / sweep.seconds:.1f}" for sweep in sweeps)
        print(f"  sweep ratio (naive / collector, {small:,} meters): {ratios}   goal >= 80")
        setup, stop, (big,) = collector_sweeps(sims, large, ["first"])
        print(f"  {large:,} meters: store, meters and collector set up in {setup:.2f} s; stopped in {stop:.2f} s")
        _report(big)
        print(
            f"  {large:,} meters polled in {big.seconds:.1f} s (goal < 60 s); the naive loop would take "
            f"{per_meter * large:.0f} s (ratio {per_meter * large / big.seconds:.1f})"
        )
        _, _, (diag,) = collector_sweeps(sims, large, ["first"], gc_off=True)
        print(
            f"  diagnostic, not a figure: the {large:,}-meter first sweep again with the garbage collector off: "
            f"{diag.seconds:.2f} s (collector CPU {diag.cpu:.2f} s, retries of live meters {diag.extra_attempts}, "
            f"live failed {diag.live_failed})"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.poll_sweep")
    parser.add_argument("--serve", nargs=3, type=int, metavar=("PART", "PARTS", "METERS"), required=True,
                        help="serve meters PART, PART + PARTS, ... below METERS (the benchmark starts these itself)")
    parser.add_argument("--delay", type=float, default=DELAY)
    args = parser.parse_args(argv)
    part, parts, meters = args.serve
    asyncio.run(_serve(part, parts, meters, args.delay))


if __name__ == "__main__":
    main()
