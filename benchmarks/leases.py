"""Leases: simulated Modbus TCP meters polled by one `amr collect` and by two sharing them; a SIGKILL.

The meters sit behind simulated Modbus TCP gateways, `PER_GATEWAY` each (unit ids 1..50, every
answer `DELAY` late; the driver reads one meter of a gateway at a time, gateways at once up to
the bus's ``concurrency``, here 200 or one a gateway if more; the meters are listed unit by unit
across the gateways), served by simulator processes. One bus; each gateway is its own
lease (``lease_group = 64``). The store is a fresh PostgreSQL database. The collectors are real
``amr collect`` processes on the schedule ``every`` with ``lease_ttl``:

1. one collector alone: it takes every lease; two slots measured;
2. a second collector starts: the time until the leases are shared evenly (hand-overs of a tenth
   a round), then two slots measured with both;
3. the first gets SIGKILL one second into a slot (mid-sweep): the time until the second holds
   every lease (goal: < 2 × TTL), and that slot and the next checked.

A slot's sweep time is from the slot's start to the last reading's poll time (``readings.ts`` of
tariff 0 in the slot); each slot is checked for meters without a reading and meters with two.
The ratio printed is one collector's sweep time over two collectors'. The database statements
leasing costs are counted by the surviving collector (logged at its stop: rounds, statements,
slot look-ups) and given per sweep and against the sweep's polls.

Sizes: 20,000 meters, ``every = "60s"``, TTL 15 s (the default); ``--quick``: 2,000 meters, ``"10s"``, TTL 5 s;
``AMR_BENCH_LEASES_METERS`` sets the number of meters (a multiple of 50).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from benchmarks.children import ServerGroup, serve_until_stdin_ends
from benchmarks.databases import fresh_database, url
from simulators.modbus import ModbusTcpSimulator
from simulators.model import Faults, VirtualMeter

ROOT = Path(__file__).resolve().parents[1]
PER_GATEWAY = 50
DELAY = 0.02  # a gateway's answer latency, s
GATEWAYS_PER_PROCESS = 100
PROFILE = "eastron-sdm630"
SIM_LIFETIME = 1800.0


def _serial(gateway: int, unit: int) -> str:
    return f"LG{gateway:04d}U{unit:02d}"


async def _serve(part: int, parts: int, gateways: int) -> None:
    """Serve gateways part, part + parts, ... below `gateways`; print their ports; stop on stdin EOF."""
    now = datetime.now(UTC)
    sims = []
    for gateway in range(part, gateways, parts):
        meters = [
            VirtualMeter(_serial(gateway, unit), address=unit, tariffs=1, start=now, faults=Faults(delay=DELAY))
            for unit in range(1, PER_GATEWAY + 1)
        ]
        sim = ModbusTcpSimulator(meters, profile=PROFILE)
        await sim.start()
        sims.append(sim)
    await serve_until_stdin_ends(sims, SIM_LIFETIME)


class Gateways(ServerGroup):
    """The simulator processes; `ports[g]` is gateway g's."""

    def __init__(self, gateways: int) -> None:
        super().__init__(
            gateways, GATEWAYS_PER_PROCESS,
            lambda part, parts: [sys.executable, "-m", "benchmarks.leases", "--serve", str(part), str(parts),
                                 str(gateways)],
            ROOT, "a simulator gave no ports",
        )


def _config(path: Path, database: str, ports: Sequence[int], name: str, every: float, ttl: float) -> Path:
    lines = [
        f'[database]\nurl = "{database}"\n',
        f'[collector]\nbuffer = "buffer-{name}.sqlite"\nname = "{name}"\nlease_ttl = "{ttl:g}s"\n',
        f'[[buses]]\nname = "field"\nkind = "modbus-tcp"\nurl = "tcp://127.0.0.1:{ports[0]}"\n'
        f'timeout = "500ms"\nretries = 2\nretry_backoff = "50ms"\nconcurrency = {max(200, len(ports))}\n'
        f'schedule = "{every:g}s"\n',
    ]
    # unit by unit across the gateways: the bus's turns go to polls of different gateways (a poll
    # waiting for its gateway, which reads one meter at a time, holds a turn of the bus meanwhile)
    for unit in range(1, PER_GATEWAY + 1):
        for gateway, port in enumerate(ports):
            lines.append(
                f'[[meters]]\nserial = "{_serial(gateway, unit)}"\nbus = "field"\n'
                f'address = "127.0.0.1:{port}/{unit}"\nprofile = "{PROFILE}"\n'
            )
    file = path / f"{name}.toml"
    file.write_text("\n".join(lines), encoding="utf-8")
    return file


@dataclass
class Slot:
    """One slot: meters read, meters read twice, the sweep's time."""

    start: float
    meters: int
    doubled: int
    seconds: float


def _slot(database: str, start: float, every: float) -> Slot:
    begin = datetime.fromtimestamp(start, UTC)
    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT meter_id), count(*), max(ts) FROM readings "
            "WHERE tariff = 0 AND ts >= %s AND ts < %s", (begin, begin + timedelta(seconds=every)),
        ).fetchone()
    assert row is not None
    distinct, total, last = row
    return Slot(start, int(distinct), int(total) - int(distinct), (last - begin).total_seconds() if last else 0.0)


def _holders(database: str) -> dict[str, int]:
    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT split_part(owner, ':', 1), count(*) FROM bus_leases "
            "WHERE owner IS NOT NULL AND expires > now() GROUP BY 1"
        ).fetchall()
    return {name: int(n) for name, n in rows}


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except psycopg.Error:
            pass  # the schema is not there yet
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout:g} s")


def _next_slot(every: float, after: float | None = None) -> float:
    moment = time.time() if after is None else after
    return (int(moment // every) + 1) * every


def _measure(database: str, every: float, count: int, label: str) -> list[Slot]:
    slots = []
    first = _next_slot(every)
    for i in range(count):
        start = first + i * every
        time.sleep(max(0.0, start + every + 1.0 - time.time()))  # the slot over and written
        slots.append(_slot(database, start, every))
        _print_slot(label, slots[-1])
    return slots


def _print_slot(label: str, slot: Slot) -> None:
    at = datetime.fromtimestamp(slot.start, UTC).strftime("%H:%M:%S")
    print(f"  {label:<28} slot {at}: {slot.meters:,} meters read, {slot.doubled} twice, sweep {slot.seconds:.2f} s",
          flush=True)


def _collect(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "amr", "collect", "-c", str(config), "--log-level", "info"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def run(quick: bool = False) -> None:
    meters = int(os.environ.get("AMR_BENCH_LEASES_METERS", 2000 if quick else 20_000))
    every, ttl = (10.0, 5.0) if quick else (60.0, 15.0)
    gateways = max(1, meters // PER_GATEWAY)
    meters = gateways * PER_GATEWAY
    print(
        f"leases benchmark: {meters:,} Modbus TCP meters behind {gateways} gateways ({PER_GATEWAY} each, "
        f"{DELAY * 1000:.0f} ms latency), one lease a gateway; every {every:g} s, lease TTL {ttl:g} s; PostgreSQL",
        flush=True,
    )
    directory = Path(tempfile.mkdtemp(prefix="amr-bench-leases-"))  # kept: the collectors' logs
    with Gateways(gateways) as sims, fresh_database() as name:
        database = url(name)
        configs = [_config(directory, database, sims.ports, f"c{i}", every, ttl) for i in (1, 2)]
        logs = [directory / "c1.log", directory / "c2.log"]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            started = time.monotonic()
            procs.append(_collect(configs[0], logs[0]))
            _wait_for(lambda: _holders(database).get("c1") == gateways, 300, "the first collector took no lease")
            print(f"  first collector holds all {gateways} leases {time.monotonic() - started:.1f} s after its start "
                  "(process start, meters synced, first round)", flush=True)
            one = _measure(database, every, 2, "one collector")
            started = time.monotonic()
            procs.append(_collect(configs[1], logs[1]))

            def shared() -> bool:
                held = _holders(database)
                return abs(held.get("c1", 0) - held.get("c2", 0)) <= 1 and sum(held.values()) == gateways

            _wait_for(shared, 300, "the two collectors did not share the leases")
            print(f"  leases shared evenly {time.monotonic() - started:.1f} s after the second collector's start",
                  flush=True)
            two = _measure(database, every, 2, "two collectors")
            kill_slot = _next_slot(every)
            time.sleep(max(0.0, kill_slot + 1.0 - time.time()))
            procs[0].send_signal(signal.SIGKILL)
            takeover = _wait_for(lambda: _holders(database).get("c2") == gateways, 10 * ttl,
                                 "the survivor did not take every lease")
            print(f"  SIGKILL to the first collector 1 s into a slot: the second holds every lease after "
                  f"{takeover:.2f} s (TTL {ttl:g} s; goal < {2 * ttl:g} s)", flush=True)
            time.sleep(max(0.0, kill_slot + 2 * every + 1.0 - time.time()))
            after = [_slot(database, kill_slot, every), _slot(database, kill_slot + every, every)]
            for slot in after:
                _print_slot("takeover", slot)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(120)
        texts = [log.read_text(errors="replace") for log in logs]
        cost = re.search(
            r"lease keeping: (\d+) round\(s\), (\d+) lease statement\(s\), (\d+) slot lookup\(s\); "
            r"a round took ([\d.]+) ms", texts[1],
        )
    lost = sum(text.count("was taken by another collector") for text in texts)
    late = sum(text.count("lease round") for text in texts)
    print(f"  leases lost while held (not renewed in time): {lost}; lease rounds late by more than TTL/3: {late}; "
          f"the collectors' logs: {directory}")
    _summary(one, two, after, meters, every, ttl, takeover, cost)


def _summary(
    one: list[Slot], two: list[Slot], after: list[Slot], meters: int, every: float, ttl: float, takeover: float,
    cost: re.Match[str] | None,
) -> None:
    best_one, best_two = min(s.seconds for s in one), min(s.seconds for s in two)
    print(f"  sweep time, one collector {', '.join(f'{s.seconds:.2f}' for s in one)} s; two collectors "
          f"{', '.join(f'{s.seconds:.2f}' for s in two)} s; ratio one / two {best_one / best_two:.2f} (best of each)")
    missing = sum(meters - s.meters for s in [*one, *two, *after])
    doubled = sum(s.doubled for s in [*one, *two, *after])
    print(f"  over all {len(one) + len(two) + len(after)} slots measured: {missing} meter-slots without a reading, "
          f"{doubled} read twice (the slot of the SIGKILL included)")
    if cost is None:
        print("  lease cost: the survivor's log has no 'lease keeping' line")
        return
    rounds, statements, lookups, round_ms = (float(g) for g in cost.groups())
    per_sweep = statements * every / (rounds * ttl / 3) if rounds else 0.0
    print(f"  lease keeping (the survivor, its whole run): {rounds:.0f} rounds, {statements:.0f} statements, "
          f"{lookups:.0f} slot look-ups at takeovers; a round {round_ms:.1f} ms; "
          f"≈ {per_sweep:.1f} statements a sweep of {every:g} s, against {meters:,} polls "
          f"({1000 * per_sweep / meters:.2f} per 1,000 polls); takeover {takeover:.2f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.leases")
    parser.add_argument("--serve", nargs=3, type=int, metavar=("PART", "PARTS", "GATEWAYS"),
                        help="serve gateways PART, PART + PARTS, ... (the benchmark starts these itself)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        part, parts, gateways = args.serve
        asyncio.run(_serve(part, parts, gateways))
    else:
        run(quick=args.quick)


if __name__ == "__main__":
    main()
