"""Serial line efficiency: Modbus RTU polls per second on a simulated 19200-baud line, against the line's limit.

A `ModbusRtuSimulator` on a pty (in its own process, so that its line-time sleeps do not share
an event loop with the collector) answers `METERS` meters at unit ids 1..10, each answer held
back by the line time of request and answer at 19200 baud (11 bits a character, each frame
followed by the 3.5-character gap). Every meter's map is one read of 20 input registers (ten
float32 values: A+, A-, R+, R- of the total and of tariff 1, A+ and A- of tariff 2), so a poll
is one 8-byte request and one 45-byte answer, and three readings.

The limit is computed from frame times: (8 + 45) characters × 11 bits / 19200 baud + 2 gaps
of 3.5 characters = 34.38 ms a poll, 29.09 polls/s. Measured, each for the same number of polls:

* a bare pyserial loop on the same pty (write the request, read the answer, keep the gap):
  what the simulator and the pty allow, i.e. the practical ceiling of any master. (The
  simulator's line time already ends with the gap after the answer and a master keeps the
  gap again before its next request, so even a perfect master gets 34.38 / 36.39 = 0.945.)
* the collector (`Collector.poll_now` through `BusWorker` and `ModbusRtuDriver`, readings
  normalised, validated and written into an SQLite store), every meter polled again as soon
  as its previous poll is done (so the line never waits for the writer), with the least legal
  pause (``frame_pause = "0ms"``: the driver never pauses less than the 3.5-character gap,
  2.005 ms), with the bus default (no ``frame_pause``: the same gap at the line's speed) and
  with the former fixed default of 20 ms. Time: from the first poll to the end of the last read.

Prints polls/s, the ratio to the computed limit (goal >= 0.8) and to the bare loop, and checks
that every poll answered, the line carried exactly one transaction a poll (no retries), and
every poll's readings are in the store. The bus is 8N1: a pty refuses parity settings, and
the line time is the simulator's anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import serial

from amr.app import App
from amr.collector.collector import Collector
from amr.config import Config, MeterConfig, config_from_dict
from amr.drivers.modbus.driver import register_map
from amr.drivers.serial_line import rtu_gap
from amr.protocols.crc import crc_bytes
from benchmarks.children import end, readline
from simulators.modbus import ModbusRtuSimulator, rtu_line_time
from simulators.model import VirtualMeter

ROOT = Path(__file__).resolve().parents[1]  # the subprocess runs `-m benchmarks.serial_line` from here
BAUD = 19200
BITS = 11  # a character on an RTU line: start, 8 data, parity, stop (8E1), as the simulator times it
METERS = 10
FIRST_REGISTER = 0
REGISTERS = 20
SIM_LIFETIME = 600.0  # the simulator process ends by itself after this long, whatever happens
# (channel, tariff) of the ten float32 values, in register order
VALUES = [
    ("a_plus", 0), ("a_minus", 0), ("r_plus", 0), ("r_minus", 0),
    ("a_plus", 1), ("a_minus", 1), ("r_plus", 1), ("r_minus", 1),
    ("a_plus", 2), ("a_minus", 2),
]


def _serial(unit: int) -> str:
    return f"RTU{unit:03d}"


def registers_config() -> list[dict[str, Any]]:
    """The meters' own register map: ten float32 values filling 20 input registers."""
    return [
        {"channel": channel, "tariff": tariff, "function": 4, "address": FIRST_REGISTER + 2 * n,
         "type": "float32", "unit": "kWh" if channel.startswith("a") else "kvarh", "decimals": 2}
        for n, (channel, tariff) in enumerate(VALUES)
    ]


def _meter(unit: int) -> dict[str, Any]:
    return {"serial": _serial(unit), "tariffs": 2, "bus": "line", "address": unit, "registers": registers_config()}


def answer_bytes() -> int:
    return 1 + 1 + 1 + 2 * REGISTERS + 2  # unit, function, byte count, data, CRC


def limit_seconds() -> float:
    """One poll on the line: request and answer frames at 11 bits a character, a 3.5-character gap after each."""
    return (8 + answer_bytes()) * BITS / BAUD + 2 * 3.5 * BITS / BAUD


# --- the simulator process -----------------------------------------------------------------


async def _serve(meters: int, baudrate: int) -> None:
    now = datetime.now(UTC)
    virtual = [VirtualMeter(_serial(u), address=u, tariffs=2, start=now) for u in range(1, meters + 1)]
    regmap = register_map(MeterConfig.model_validate(_meter(1)), 125)  # what the driver reads
    sim = ModbusRtuSimulator(virtual, transport="pty", baudrate=baudrate, profile=regmap)
    await sim.start()
    print(json.dumps({"url": sim.url}), flush=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SIM_LIFETIME
    try:
        while True:
            line = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
            done, _ = await asyncio.wait({line}, timeout=max(0.0, deadline - loop.time()))
            if not done or not line.result():  # lifetime over, or the benchmark closed stdin
                break
            if line.result().strip() == "count":  # the benchmark asks how many requests were served
                print(json.dumps({"requests": len(sim.requests)}), flush=True)
    finally:
        await sim.stop()
    os._exit(0)  # the thread reading stdin may still be blocked


class Simulator:
    """The simulator process; `url` is the pty's path."""

    def __init__(self, meters: int) -> None:
        self.meters = meters
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Simulator:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.serial_line", "--serve", str(self.meters), "--baud", str(BAUD)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        try:
            self.url = str(self._ask(None)["url"])
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ask(self, line: str | None) -> dict[str, object]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        answer: dict[str, object] = json.loads(_readline(self.proc.stdout, 30.0))
        return answer

    def requests(self) -> int:
        """Read requests the simulated meters have answered so far."""
        return int(str(self._ask("count")["requests"]))

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            end([self.proc])


def _readline(stream: IO[str], timeout: float) -> str:
    return readline(stream, timeout, "the simulator process did not answer")


# --- the bare loop --------------------------------------------------------------------------


def bare_loop(url: str, meters: int, polls: int) -> tuple[float, int]:
    """Request after request on the pty with pyserial, keeping the 3.5-character gap; seconds, good answers."""
    size = answer_bytes()
    requests = []
    for unit in range(1, meters + 1):
        body = bytes([unit, 4]) + FIRST_REGISTER.to_bytes(2, "big") + REGISTERS.to_bytes(2, "big")
        requests.append(body + crc_bytes(body))
    gap = rtu_gap(BAUD)
    good = 0
    with serial.serial_for_url(url, baudrate=BAUD, timeout=1.0) as port:
        started = time.perf_counter()
        idle_since = started
        for n in range(polls):
            time.sleep(max(0.0, idle_since + gap - time.perf_counter()))
            port.write(requests[n % meters])
            answer = port.read(size)
            idle_since = time.perf_counter()
            good += len(answer) == size and crc_bytes(answer[:-2]) == answer[-2:]
        return time.perf_counter() - started, good


# --- the collector ---------------------------------------------------------------------------


@dataclass
class Run:
    frame_pause: str
    polls: int
    seconds: float
    answered: int
    attempts: int
    line_requests: int
    stored: int
    rejected: int


def line_config(url: str, directory: Path, meters: int, frame_pause: str) -> Config:
    """`frame_pause` "default" leaves the key out (the gap at the line's speed)."""
    # 8N1: a pty refuses parity settings (EINVAL); it carries bytes at once anyway, the line time is the simulator's
    bus = {"name": "line", "kind": "modbus-rtu", "url": url, "baudrate": BAUD,
           "timeout": "500ms", "retries": 2, "retry_backoff": "50ms"}
    if frame_pause != "default":
        bus["frame_pause"] = frame_pause
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{directory / 'amr.sqlite'}"},
        "buses": [bus],
        "meters": [_meter(u) for u in range(1, meters + 1)],
        "collector": {"buffer": str(directory / "buffer.sqlite")},
    }
    return config_from_dict(data, environ={}, file=directory / "amr.toml")


async def _poll_continuously(config: Config, rounds: int) -> tuple[float, int, int]:
    app = await asyncio.to_thread(App.open, config)
    try:
        collector = Collector(app)
        await collector.start(schedule=False, push=False)
        try:
            await collector.poll_all()  # the port opened and every meter answered once: not counted
            answered = attempts = 0
            finished = 0.0

            async def meter(serial_no: str) -> None:
                nonlocal answered, attempts, finished
                for _ in range(rounds):
                    result = await collector.poll_now(serial_no)
                    answered += result.ok
                    attempts += result.attempts
                    finished = max(finished, result.finished_at.timestamp())  # its read, before the write

            started = time.time()
            await asyncio.gather(*(meter(serial_no) for serial_no in collector.polled))
            seconds = finished - started
        finally:
            await collector.stop()
    finally:
        app.close()
    return seconds, answered, attempts


def collector_run(sim: Simulator, meters: int, rounds: int, frame_pause: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="amr-bench-line-") as tmp:
        config = line_config(sim.url, Path(tmp), meters, frame_pause)
        before = sim.requests()
        seconds, answered, attempts = asyncio.run(_poll_continuously(config, rounds))
        line_requests = sim.requests() - before - meters  # less the first sweep's
        with contextlib.closing(sqlite3.connect(Path(tmp) / "amr.sqlite")) as db:
            stored = int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
            rejected = int(db.execute("SELECT count(*) FROM rejected_readings").fetchone()[0])
    return Run(frame_pause, meters * rounds, seconds, answered, attempts, line_requests, stored, rejected)


def run(quick: bool = False) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    rounds = 10 if quick else 100
    polls = METERS * rounds
    limit = limit_seconds()
    per_second = 1 / limit
    print(
        f"serial line benchmark: Modbus RTU at {BAUD} baud on a pty, {METERS} meters, one read of "
        f"{REGISTERS} input registers a poll (8-byte request, {answer_bytes()}-byte answer)"
    )
    print(
        f"  limit from frame times: ({8 + answer_bytes()} characters × {BITS} bits + 2 gaps of 3.5 characters) "
        f"/ {BAUD} baud = {limit * 1000:.2f} ms a poll, {per_second:.2f} polls/s "
        f"(the simulator holds each answer back {rtu_line_time(8, answer_bytes(), BAUD) * 1000:.2f} ms)"
    )
    with Simulator(METERS) as sim:
        bare, good = bare_loop(sim.url, METERS, polls)
        bare_rate = good / bare
        print(
            f"  bare pyserial loop            {good / bare:6.2f} polls/s  ({good} of {polls} answered in {bare:.2f} s; "
            f"ratio to the limit {bare_rate / per_second:.3f})"
        )
        gap = rtu_gap(BAUD)
        for pause in ("0ms", "default", "20ms"):
            result = collector_run(sim, METERS, rounds, pause)
            rate = result.answered / result.seconds
            effective = gap if pause == "default" else max(float(pause.removesuffix("ms")) / 1000, gap)
            print(
                f"  collector, frame_pause {pause:>7} {rate:6.2f} polls/s  ({result.answered} of {result.polls} "
                f"answered in {result.seconds:.2f} s; pause kept {effective * 1000:.3f} ms)"
            )
            print(
                f"      ratio to the limit {rate / per_second:.3f} (goal >= 0.8); to the bare loop "
                f"{rate / bare_rate:.3f}; attempts {result.attempts}, transactions on the line "
                f"{result.line_requests}; readings in the store {result.stored:,} "
                f"(3 a poll, first sweep included), refused {result.rejected}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serial_line")
    parser.add_argument("--serve", type=int, metavar="METERS", required=True,
                        help="run the simulated line (the benchmark starts this itself)")
    parser.add_argument("--baud", type=int, default=BAUD)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.serve, args.baud))


if __name__ == "__main__":
    main()
