"""DLMS sweep: 500 DLMS/COSEM meters on the TCP wrapper polled by the collector, against a naive loop;
and HDLC line efficiency at 9600 baud on a pty, against the frame-time limit.

**Sweep.** `METERS` simulated СПОДЭС meters (`simulators.dlms.DlmsWrapperSimulator`, in a process
of its own), each on its own loopback port, each answer held back `DELAY` (50 ms,
``Faults(delay=...)``, the simulator's injected latency). A poll as the public client is:
connect, AARQ/AARE, for A+ A- R+ R- the scaler-unit (first poll only, then kept) and the value,
the clock, RLRQ/RLRE, close: 11 round trips on the first poll, 7 after.

* the naive baseline: the same library (`dlms-cosem` 21.3.2's own blocking `DlmsClient`), meter
  after meter: connect, associate, the four registers' values and scaler-units and the clock,
  release, close. Measured on a sample (`SAMPLE` meters) and scaled to `METERS`;
* the collector (`App.open`, `Collector.start(schedule=False, push=False)`, `poll_all`: what
  ``amr collect --once`` does, readings validated and written into an SQLite store), bus
  ``concurrency`` = `METERS`: the DLMS driver runs each bus's polls in a thread pool of that
  size. Per run a fresh store: the ``first`` sweep (scaler-units read) and a ``warm`` one.

Printed per run: seconds, the ratio naive / collector for the first sweep (goal >= 50), CPU
seconds of the collector's process per poll and of the simulator; then the range over `RUNS`.

**Line efficiency.** `LINE_METERS` meters on one HDLC line on a pty at 9600 baud 8N1 (the
simulator, in its own process, waits each request's line time and sends its answer no faster
than the line carries it). The ``dlms-hdlc`` driver polls them one after another `LINE_POLLS`
times. Every byte written and read on the line is counted; the frame-time limit is
bytes × 10 bits / 9600 baud, what the line needs to carry the transactions back to back with
no gap; efficiency = limit / measured time (goal >= 0.7), per run and its range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amr.app import App
from amr.collector.collector import Collector
from amr.config import BusConfig, Config, MeterConfig
from amr.drivers.dlms.driver import DlmsHdlcDriver
from benchmarks.children import end, readline
from benchmarks.configs import sqlite_config
from simulators.model import Faults, VirtualMeter

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
METERS = 500
SAMPLE = 20  # meters the naive loop reads (0.55 s each at 50 ms a round trip), scaled to METERS
DELAY = 0.05
RUNS = 3
TIMEOUT = "2s"
BAUD = 9600
BITS_PER_CHAR = 10  # 8N1: start, 8 data, stop
LINE_METERS, LINE_POLLS = 3, 2
SIM_LIFETIME = 900.0  # a simulator process ends by itself after this long


def _serial(index: int) -> str:
    return f"DS{index:04d}"


# --- the simulator process -------------------------------------------------------------------


async def _serve(kind: str, meters: int, delay: float) -> None:
    """Serve `meters` meters (``wrapper``: a port each; ``hdlc``: one pty line); print where; stop on EOF."""
    from simulators.dlms import DlmsHdlcSimulator, DlmsWrapperSimulator

    now = datetime.now(UTC)
    # start = now: the model does not first simulate a day minute by minute
    virtual = [VirtualMeter(_serial(i), address=16 + i, tariffs=1, start=now, faults=Faults(delay=delay))
               for i in range(meters)]
    if kind == "wrapper":
        sim: Any = DlmsWrapperSimulator(virtual)
        await sim.start()
        print(json.dumps([sim.ports[m.serial] for m in virtual]), flush=True)
    else:
        sim = DlmsHdlcSimulator(virtual, transport="pty", baudrate=BAUD)
        await sim.start()
        print(json.dumps(sim.url), flush=True)
    eof = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    await asyncio.wait({eof}, timeout=SIM_LIFETIME)
    await sim.stop()
    os._exit(0)  # the thread reading stdin may still be blocked


class Simulator:
    """The simulator in its own process; `where` is what it printed (ports, or the pty's path)."""

    def __init__(self, kind: str, meters: int, delay: float) -> None:
        self.args = [sys.executable, "-m", "benchmarks.dlms_sweep", "--serve", kind, str(meters), "--delay",
                     str(delay)]
        self.proc: subprocess.Popen[str] | None = None
        self.where: Any = None

    def __enter__(self) -> Simulator:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert self.proc.stdout is not None
            self.where = json.loads(readline(self.proc.stdout, 120.0, "the DLMS simulator said nothing"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            end([self.proc])

    def cpu(self) -> float:
        """CPU seconds the simulator process used so far."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the naive loop ----------------------------------------------------------------------------


def naive_loop(ports: Sequence[int]) -> tuple[float, int]:
    """dlms-cosem's own client, meter after meter: registers (value, scaler-unit) and the clock. Seconds, ok."""
    from dlms_cosem import cosem, enumerations, utils  # type: ignore[import-untyped]
    from dlms_cosem.clients.dlms_client import DlmsClient  # type: ignore[import-untyped]

    register, clock = enumerations.CosemInterface.REGISTER, enumerations.CosemInterface.CLOCK
    ok = 0
    started = time.perf_counter()
    for port in ports:
        client = DlmsClient.with_tcp_transport(HOST, port, 16, 1, timeout=2)
        with client.session() as c:
            for channel in (1, 2, 3, 4):
                obis = cosem.Obis(1, 0, channel, 8, 0, 255)
                utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(register, obis, 3)))
                utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(register, obis, 2)))
            utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(clock, cosem.Obis(0, 0, 1, 0, 0, 255), 2)))
        ok += 1
    return time.perf_counter() - started, ok


# --- the collector sweep ----------------------------------------------------------------------


def sweep_config(ports: Sequence[int], directory: Path) -> Config:
    bus = {"name": "dlms", "kind": "dlms-tcp", "url": f"tcp://{HOST}:{ports[0]}", "timeout": TIMEOUT,
           "retries": 2, "retry_backoff": "50ms", "concurrency": len(ports)}
    meters = [{"serial": _serial(i), "bus": "dlms", "address": 16 + i, "tariffs": 1,
               "dlms": {"host": f"{HOST}:{port}"}} for i, port in enumerate(ports)]
    return sqlite_config([bus], meters, directory)


async def _sweeps(config: Config, sim: Simulator) -> list[tuple[float, float, float, int, int]]:
    """A fresh collector's first and warm sweeps: seconds, own CPU, simulator CPU, answered, extra attempts."""
    app = await asyncio.to_thread(App.open, config)
    found = []
    try:
        collector = Collector(app)
        await collector.start(schedule=False, push=False)
        try:
            for _ in ("first", "warm"):
                cpu, sim_cpu, started = _cpu(), sim.cpu(), time.perf_counter()
                results = await collector.poll_all()
                found.append((time.perf_counter() - started, _cpu() - cpu, sim.cpu() - sim_cpu,
                              sum(r.ok for r in results), sum(r.attempts - 1 for r in results if r.ok)))
        finally:
            await collector.stop()
    finally:
        app.close()
    return found


def collector_sweeps(ports: Sequence[int], sim: Simulator) -> list[tuple[float, float, float, int, int]]:
    with tempfile.TemporaryDirectory(prefix="amr-bench-dlms-") as tmp:
        return asyncio.run(_sweeps(sweep_config(ports, Path(tmp)), sim))


# --- HDLC line efficiency ----------------------------------------------------------------------


async def _line_polls(url: str) -> tuple[float, int, int]:
    """The dlms-hdlc driver's polls, meter after meter: seconds, bytes on the line, polls that answered."""
    bus = BusConfig.model_validate({"name": "line", "kind": "dlms-hdlc", "url": url, "baudrate": BAUD,
                                    "timeout": "3s"})
    driver = DlmsHdlcDriver(bus)
    counted = [0]
    send, receive = driver.line.send, driver.line.receive

    def counting_send(frame: bytes, *, pause: float | None = None) -> None:
        counted[0] += len(frame)
        send(frame, pause=pause)

    def counting_receive(*args: Any, **kwargs: Any) -> bytes:
        data = receive(*args, **kwargs)
        counted[0] += len(data)
        return data

    driver.line.send = counting_send  # type: ignore[method-assign]
    driver.line.receive = counting_receive  # type: ignore[method-assign]
    await driver.open()
    meters = [MeterConfig(serial=_serial(i), address=16 + i) for i in range(LINE_METERS)]
    try:
        await driver.read(meters[0])  # scaler-units kept, the line settled: not counted
        counted[0], answered = 0, 0
        started = time.perf_counter()
        for _ in range(LINE_POLLS):
            for meter in meters:
                values = await driver.read(meter)
                answered += bool(values.tariffs)
        return time.perf_counter() - started, counted[0], answered
    finally:
        await driver.close()


def run(quick: bool = False) -> None:
    logging.getLogger("amr").setLevel(logging.ERROR)
    logging.getLogger("dlms_cosem").setLevel(logging.WARNING)
    meters = 100 if quick else METERS
    runs = 1 if quick else RUNS
    print(f"DLMS sweep benchmark: {meters} DLMS meters on the TCP wrapper, each its own loopback port, "
          f"{DELAY * 1000:.0f} ms added to every answer; public client; SQLite store; {runs} run(s)")
    ratios, firsts, warms, cpu_per_poll = [], [], [], []
    with Simulator("wrapper", meters, DELAY) as sim:
        ports = sim.where
        for run_no in range(1, runs + 1):
            naive, ok = naive_loop(ports[:SAMPLE])
            per_meter = naive / SAMPLE
            (first, cpu, sim_cpu, answered, extra), (warm, wcpu, wsim, wanswered, _) = collector_sweeps(ports, sim)
            ratio = per_meter * meters / first
            ratios.append(ratio)
            firsts.append(first)
            warms.append(warm)
            cpu_per_poll.append(cpu / meters * 1000)
            print(f"  run {run_no}: naive {per_meter * 1000:.0f} ms a meter ({ok}/{SAMPLE} read), scaled to "
                  f"{meters}: {per_meter * meters:.1f} s")
            print(f"         collector first sweep {first:.2f} s ({answered}/{meters} answered, {extra} retries): "
                  f"ratio {ratio:.1f}; warm sweep {warm:.2f} s ({wanswered}/{meters}, ratio "
                  f"{per_meter * meters / warm:.1f})")
            print(f"         CPU a poll: collector {cpu / meters * 1000:.2f} ms first, {wcpu / meters * 1000:.2f} ms "
                  f"warm; simulator {sim_cpu / meters * 1000:.2f} ms / {wsim / meters * 1000:.2f} ms")
    print(f"  ratio naive / collector (first sweep): {min(ratios):.1f} .. {max(ratios):.1f}   goal >= 50")
    print(f"  first sweep {min(firsts):.2f} .. {max(firsts):.2f} s; warm {min(warms):.2f} .. {max(warms):.2f} s; "
          f"collector CPU a poll {min(cpu_per_poll):.2f} .. {max(cpu_per_poll):.2f} ms")

    print(f"HDLC line efficiency: {LINE_METERS} meters on one pty line at {BAUD} baud 8N1, the dlms-hdlc driver "
          f"polling them in turn, {LINE_POLLS} rounds a run, {runs} run(s)")
    efficiencies = []
    with Simulator("hdlc", LINE_METERS, 0.0) as line:
        for run_no in range(1, runs + 1):
            seconds, carried, answered = asyncio.run(_line_polls(line.where))
            limit = carried * BITS_PER_CHAR / BAUD
            polls = LINE_POLLS * LINE_METERS
            efficiencies.append(limit / seconds)
            print(f"  run {run_no}: {polls} polls ({answered} answered) in {seconds:.2f} s, {carried} bytes on the "
                  f"line ({carried / polls:.0f} a poll): frame-time limit {limit:.2f} s, efficiency "
                  f"{limit / seconds:.3f}")
    print(f"  efficiency {min(efficiencies):.3f} .. {max(efficiencies):.3f}   goal >= 0.7")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dlms_sweep")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "METERS"), required=True,
                        help="serve METERS meters, KIND wrapper or hdlc (the benchmark starts these itself)")
    parser.add_argument("--delay", type=float, default=DELAY)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.serve[0], int(args.serve[1]), args.delay))


if __name__ == "__main__":
    main()
