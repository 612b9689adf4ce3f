"""Start-up of `amr` commands with many meters configured, against a bare interpreter and psql.

For each size (``AMR_BENCH_STARTUP_METERS``, default "2000,100000"; "2000,20000" with
``--quick``), on a fresh PostgreSQL database, each command run as a process
``AMR_BENCH_STARTUP_REPEAT`` times (default 3; 1 with ``--quick``):

* ``amr check-config``: parse and validate the file;
* ``amr import`` of a 2-row CSV, first start: the database is new, every meter is synced
  (a fresh database for each repetition);
* ``amr import`` of the same file, second start: nothing changed since the last sync;
* ``amr collect --once`` with no meter on a polled bus: start-up, meter sync, nothing to poll;
* ``amr api``: from the start of the process until ``/healthz`` answers.

``amr collect --once`` with no polled meter ends where the first poll would start, so its time
is the collector's start-up. The package's bytecode is compiled first (as an installed package
has it), so that no run pays for compiling ``amr`` when ``PYTHONDONTWRITEBYTECODE`` is set.

Prints the median and range of each time, its ratio to the baseline (``python -c "import amr"``,
measured in the same run, and ``psql -c 'select 1'``), and the peak RSS of the process.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.databases import fresh_database, url
from benchmarks.import_file import write_config

CSV = (
    "meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus\n"
    "1000000,2026-01-01T00:30:00+03:00,0,1000.000,,200.000,\n"
    "1000001,2026-01-01T00:30:00+03:00,0,1001.000,,201.000,\n"
)
AMR = [sys.executable, "-m", "amr"]


Run = tuple[float, int, float]
"""Wall seconds, peak RSS (KiB) and CPU seconds (user + system) of one process."""


def timed(command: list[str], ok: Callable[[int, str], bool] | None = None) -> Run:
    """Wall seconds, peak RSS (KiB) and CPU seconds of `command` run as a process; `RuntimeError`
    when it fails."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        out.seek(0)
        output = out.read()
    if not (ok(code, output) if ok is not None else code == 0):
        raise RuntimeError(f"{' '.join(command)} failed ({code}): {output[-2000:]}")
    return seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
        conn.close()
    except OSError:
        return False
    return status in (200, 503)  # 503: answering, and reporting the collector as not running


def api_start(config: Path) -> Run:
    """Seconds from starting `amr api` until /healthz answers, the server's peak RSS (KiB) and its CPU
    seconds until it was asked to stop."""
    port = _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*AMR, "api", "-c", str(config), "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while not _answers(port):
            if proc.poll() is not None:
                told = proc.stderr.read() if proc.stderr is not None else b""
                raise RuntimeError(f"amr api ended ({proc.returncode}): {told[-2000:]!r}")
            if time.perf_counter() - started > 300:
                raise RuntimeError("amr api did not answer /healthz within 300 s")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        proc.terminate()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    if proc.stderr is not None:
        proc.stderr.close()
    return seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def _line(label: str, runs: list[Run], baseline: float) -> str:
    times = [t for t, _, _ in runs]
    cpu = [c for _, _, c in runs]
    median = statistics.median(times)
    return (
        f"    {label:<24} {median:6.2f} s ({min(times):.2f}–{max(times):.2f}), "
        f"×{median / baseline:5.1f} baseline; CPU {statistics.median(cpu):5.2f} s ({min(cpu):.2f}–{max(cpu):.2f}); "
        f"peak RSS {max(r for _, r, _ in runs) / 1024:4.0f} MiB"
    )


def _no_polled_meter(code: int, output: str) -> bool:
    return code == 0 or "no meter on a polled bus" in output


def run(quick: bool = False) -> None:
    """Print each command's start-up time per number of meters."""
    sizes_given = os.environ.get("AMR_BENCH_STARTUP_METERS", "2000,20000" if quick else "2000,100000")
    sizes = [int(s) for s in sizes_given.split(",")]
    repeat = int(os.environ.get("AMR_BENCH_STARTUP_REPEAT", 1 if quick else 3))
    if shutil.which("psql") is None:
        raise SystemExit("the start-up benchmark needs psql (apt-get install postgresql-client)")
    package = Path(__file__).resolve().parent.parent / "amr"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    bare = [timed([sys.executable, "-c", "import amr"]) for _ in range(max(repeat, 3))]
    baseline = statistics.median(t for t, _, _ in bare)
    psql = [timed(["psql", "-X", "-q", url("postgres"), "-c", "select 1"]) for _ in range(max(repeat, 3))]
    print(
        f"startup: baseline python -c 'import amr' {baseline:.3f} s "
        f"({min(t for t, _, _ in bare):.3f}–{max(t for t, _, _ in bare):.3f}); "
        f"psql -c 'select 1' {statistics.median(t for t, _, _ in psql):.3f} s; {repeat} run(s) of each; "
        "wall time, then CPU time (user + system)"
    )
    with tempfile.TemporaryDirectory(prefix="amr-bench-startup-") as folder:
        base = Path(folder)
        data = base / "two.csv"
        data.write_text(CSV, encoding="utf-8")
        config = base / "amr.toml"
        for meters in sizes:
            print(f"  {meters:,} meters (the file: {meters * 95 / 1e6:.1f} MB or so)")
            firsts: list[Run] = []
            seconds: list[Run] = []
            checks: list[Run] = []
            collects: list[Run] = []
            apis: list[Run] = []
            for _ in range(repeat):
                with fresh_database() as name:
                    write_config(config, meters, url(name))
                    if not checks:
                        checks = [timed([*AMR, "check-config", "-c", str(config)]) for _ in range(repeat)]
                    firsts.append(timed([*AMR, "import", "-c", str(config), str(data)]))
                    seconds.append(timed([*AMR, "import", "-c", str(config), str(data)]))
                    collects.append(timed([*AMR, "collect", "--once", "-c", str(config)], _no_polled_meter))
                    apis.append(api_start(config))
            print(_line("check-config", checks, baseline))
            print(_line("import, first start", firsts, baseline))
            print(_line("import, second start", seconds, baseline))
            print(_line("collect --once (no bus)", collects, baseline))
            print(_line("api until /healthz", apis, baseline))
