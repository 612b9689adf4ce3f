"""Start-up loads only what a configuration needs, and still says everything it said before."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from amr.cli import main

SLOW_LINE = """
[[buses]]
name = "rs485"
kind = "modbus-rtu"
url = "socket://127.0.0.1:4001"
baudrate = 1200
schedule = "10s"
"""


def _meters(count: int, on_bus: bool) -> str:
    where = 'bus = "rs485"\nprofile = "eastron-sdm630"\n' if on_bus else ""
    return "".join(
        f'\n[[meters]]\nserial = "{1000 + i}"\npoint = "kv{i}"\ndigits = 8\n{where}'
        + (f"address = {i + 1}\n" if on_bus else "")
        for i in range(count)
    )


def _check_config_in_a_process(path: Path, after: str) -> list[str]:
    """`amr check-config -c path` as the console script runs it, in a new interpreter, then `after`
    (an expression printed on the last line); the lines it printed."""
    probe = (
        "import gc, sys\nfrom amr.cli import main\n"
        f"sys.argv = ['amr', 'check-config', '-c', {str(path)!r}]\n"
        f"assert main() == 0\nprint({after})\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_check_config_warns_of_a_slow_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "amr.toml"
    path.write_text(SLOW_LINE + _meters(40, on_bus=True), encoding="utf-8")
    assert main(["check-config", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "OK — 40 meter(s)" in out
    assert "warning: bus 'rs485': one sweep of 40 meter(s) takes about" in err


def test_meters_on_no_bus_load_without_the_protocols(tmp_path: Path) -> None:
    """A file of meters read from files only (no bus) is validated without importing a protocol."""
    path = tmp_path / "amr.toml"
    path.write_text(_meters(50, on_bus=False), encoding="utf-8")
    printed = _check_config_in_a_process(path, "sorted(m for m in sys.modules if m.startswith('amr.drivers'))")
    assert printed[-1] == "[]"
    assert "OK — 50 meter(s)" in printed[0]


def test_a_command_run_inside_another_program_leaves_its_collector_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the console script's own process freezes its start-up objects out of cyclic collections;
    `main([...])` called by a program (a test session) must not keep that program's garbage for good."""
    path = tmp_path / "amr.toml"
    path.write_text(_meters(3, on_bus=False), encoding="utf-8")
    frozen = gc.get_freeze_count()
    assert main(["check-config", "-c", str(path)]) == 0
    assert gc.get_freeze_count() == frozen
    assert _check_config_in_a_process(path, "gc.get_freeze_count() > 0")[-1] == "True"
