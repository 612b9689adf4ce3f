"""Start-up of `amr collect`, `amr api` and `amr import` with the meters in the registry (the store),
extending `benchmarks.startup` (there the meters are in the TOML file).

For each size (``AMR_BENCH_REGISTRY_METERS``, default "2000,100000"; "2000,20000" with
``--quick``), on a fresh PostgreSQL database: ``amr registry apply`` of a file of that many
Modbus TCP meters (200 a bus, every key a real site has: object, point, account, ratio,
address, profile) fills the registry once; then, with a configuration file that holds no meter
(``[registry] source = "database"``), each command runs as a process
``AMR_BENCH_STARTUP_REPEAT`` times (default 3; 1 with ``--quick``):

* ``amr import`` of a 2-row CSV: start, load the registry, judge and store two readings;
* ``amr collect``: from the start until it logs that it is collecting (every bus opened, every
  meter scheduled), then SIGTERM; each run starts as the first collector of the database (the
  leases the run before gave back are forgotten, so no slot is caught up: see `collect_start`);
* ``amr api``: from the start until ``/healthz`` answers.

Prints the wall time (median and range), the CPU time (user + system) and the peak RSS of each,
and the ratio of the wall time to the baseline ``python -c "import amr"`` measured in the same run.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.databases import fresh_database, url
from benchmarks.startup import AMR, CSV, Run, _line, api_start, timed

PER_BUS = 200


def write_registry(path: Path, meters: int, database_url: str) -> None:
    """A file of `meters` Modbus TCP meters on buses of `PER_BUS` (their ports closed: nothing answers)."""
    with path.open("w", encoding="utf-8") as out:
        out.write(f'[database]\nurl = "{database_url}"\n\n[registry]\nsource = "database"\n\n')
        for bus in range((meters + PER_BUS - 1) // PER_BUS):
            out.write(f'[[buses]]\nname = "tcp{bus}"\nkind = "modbus-tcp"\nurl = "tcp://127.0.0.1:{20000 + bus}"\n'
                      'schedule = "30m"\n\n')
        for i in range(meters):
            out.write(
                f'[[meters]]\nserial = "{1000000 + i}"\nobject = "house {i // 50}"\npoint = "kv{i}"\n'
                f'accounts = ["{5000000 + i}"]\ndigits = 8\ndecimals = 3\nct_ratio = {40 if i % 2 else 1}\n'
                f'bus = "tcp{i // PER_BUS}"\naddress = {i % PER_BUS + 1}\nprofile = "eastron-sdm630"\n\n'
            )


def collect_start(config: Path, database_url: str | None = None) -> Run:
    """Wall seconds until `amr collect` logs that it is collecting; its CPU and peak RSS (to its stop).
    With `database_url`, the leases an earlier run gave back are forgotten first: otherwise this start
    would take them over within their slot and poll at once every meter not yet polled in it (all of
    them: no port answers), which is the takeover's work (`./dev bench leases`), not start-up."""
    if database_url is not None:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM bus_leases")
    started = time.perf_counter()
    proc = subprocess.Popen([*AMR, "collect", "-c", str(config), "--log-level", "info"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seconds = None
    for line in proc.stderr:
        if "collecting" in line:
            seconds = time.perf_counter() - started
            break
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    proc.stderr.close()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    if seconds is None:
        raise RuntimeError("amr collect ended before collecting")
    return seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def run(quick: bool = False) -> None:
    """Print each command's start-up with the registry in the store, per number of meters."""
    sizes = [int(s) for s in os.environ.get("AMR_BENCH_REGISTRY_METERS", "2000,20000" if quick else "2000,100000")
             .split(",")]
    repeat = int(os.environ.get("AMR_BENCH_STARTUP_REPEAT", 1 if quick else 3))
    bare = [timed([sys.executable, "-c", "import amr"]) for _ in range(max(repeat, 3))]
    baseline = statistics.median(w for w, _, _ in bare)
    print(f"registry start-up: baseline python -c 'import amr' {baseline:.3f} s "
          f"({min(w for w, _, _ in bare):.3f}–{max(w for w, _, _ in bare):.3f}); {repeat} run(s) of each")
    with tempfile.TemporaryDirectory(prefix="amr-bench-registry-") as folder:
        base = Path(folder)
        (base / "two.csv").write_text(CSV, encoding="utf-8")
        for meters in sizes:
            with fresh_database() as name:
                registry, config = base / f"registry-{meters}.toml", base / f"run-{meters}.toml"
                write_registry(registry, meters, url(name))
                config.write_text(f'[database]\nurl = "{url(name)}"\n\n[registry]\nsource = "database"\n\n'
                                  f'[collector]\nbuffer = "buffer-{meters}.sqlite"\n', encoding="utf-8")
                applied = timed([*AMR, "registry", "apply", "-c", str(registry)])
                print(f"  {meters:,} meters in the registry ({(meters + PER_BUS - 1) // PER_BUS} buses); "
                      f"registry apply {applied[0]:.1f} s (CPU {applied[2]:.1f} s)")
                imports = [timed([*AMR, "import", "-c", str(config), str(base / "two.csv")]) for _ in range(repeat)]
                collects = [collect_start(config, url(name)) for _ in range(repeat)]
                apis = [api_start(config) for _ in range(repeat)]
                print(_line("import (2 rows)", imports, baseline))
                print(_line("collect until polling", collects, baseline))
                print(_line("api until /healthz", apis, baseline))
