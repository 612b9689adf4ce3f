"""`python -m benchmarks [name ...]` runs the named benchmarks (all by default)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "ingest": "benchmarks.ingest",
    "import": "benchmarks.import_file",
    "startup": "benchmarks.startup",
    "registry_startup": "benchmarks.registry_startup",
    "api": "benchmarks.api",
    "poll_sweep": "benchmarks.poll_sweep",
    "serial_line": "benchmarks.serial_line",
    "mqtt_ingest": "benchmarks.mqtt_ingest",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="which to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="a smaller run to check the benchmark works")
    args = parser.parse_args()
    for name in args.names or list(BENCHMARKS):
        importlib.import_module(BENCHMARKS[name]).run(quick=args.quick)


if __name__ == "__main__":
    main()
