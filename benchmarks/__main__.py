"""`python -m benchmarks [name ...]` runs the named benchmarks (all by default)."""

from __future__ import annotations

import argparse
import importlib
import inspect

BENCHMARKS = {
    "ingest": "benchmarks.ingest",
    "import": "benchmarks.import_file",
    "startup": "benchmarks.startup",
    "registry_startup": "benchmarks.registry_startup",
    "registry_pages": "benchmarks.registry_pages",
    "api": "benchmarks.api",
    "poll_sweep": "benchmarks.poll_sweep",
    "serial_line": "benchmarks.serial_line",
    "mqtt_ingest": "benchmarks.mqtt_ingest",
    "dlms_sweep": "benchmarks.dlms_sweep",
    "interval_ingest": "benchmarks.interval_ingest",
    "backfill": "benchmarks.backfill",
    "leases": "benchmarks.leases",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="which to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="a smaller run to check the benchmark works")
    parser.add_argument("--rows", type=int, help="how many rows, for the benchmarks that take it (interval_ingest)")
    args = parser.parse_args()
    for name in args.names or list(BENCHMARKS):
        run = importlib.import_module(BENCHMARKS[name]).run
        if args.rows is not None and "rows" in inspect.signature(run).parameters:
            run(quick=args.quick, rows=args.rows)
        else:
            run(quick=args.quick)


if __name__ == "__main__":
    main()
