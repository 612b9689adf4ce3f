"""`amr backfill` end to end: a simulated Mercury 230 on a real pty, a real SQLite store, the CLI's output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amr.cli import main
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.serial_meters import MercurySimulator
from tests.support.background import in_thread

NOW = datetime.now(UTC)


@pytest.fixture
def line() -> Iterator[str]:
    """The pty of a simulated line with meter 41000051 (3 days of profile), served by another thread."""
    meter = VirtualMeter("41000051", address=51, start=NOW - timedelta(days=3))
    sim = MercurySimulator([meter], line_speed=False, profiles={meter.serial: ProfileMemory(meter)})
    with in_thread(sim):
        yield sim.url


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "amr.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / 'amr.sqlite'}"
[site]
timezone = "Europe/Moscow"
[backfill]
first = "12h"
chunk = "4h"
[[buses]]
name = "line"
kind = "mercury230"
url = "{url}"
timeout = "500ms"
[[buses]]
name = "tcp"
kind = "modbus-tcp"
url = "tcp://127.0.0.1:1"
[[meters]]
serial = "41000051"
bus = "line"
address = 51
ct_ratio = 5
[[meters]]
serial = "MB-1"
bus = "tcp"
address = 1
profile = "eastron-sdm630"
""",
        encoding="utf-8",
    )
    return path


def test_backfill_json_then_nothing_missing(line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path, line))
    assert main(["backfill", "-c", config, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    (meter,) = summary["meters"]  # the Modbus meter reads no profile and is not listed
    assert meter["meter"] == "41000051" and meter["error"] is None and meter["lost"] is None
    assert 24 <= meter["records"] <= 25 and meter["written"] == 4 * meter["records"]
    assert main(["backfill", "-c", config]) == 0
    assert capsys.readouterr().out.strip() == "41000051: nothing missing; 0 record(s), 0 interval value(s) written"
    # an explicit range is read again: what is stored is only duplicates
    since, until = (NOW - timedelta(hours=h) for h in (6, 2))
    span = ["--from", since.isoformat(), "--to", until.isoformat()]
    assert main(["backfill", "-c", config, "--meter", "41000051", *span, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["meters"][0]
    assert again["written"] == 0 and again["duplicate"] == 4 * again["records"] > 0


def test_bad_requests_are_one_line_and_an_exit_code(
    line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, line))
    assert main(["backfill", "-c", config, "--meter", "MB-1"]) == 1
    expected = "modbus-tcp bus, which reads no profiles (mercury230, iec62056-21, dlms-tcp, dlms-hdlc do)"
    assert expected in capsys.readouterr().err
    assert main(["backfill", "-c", config, "--meter", "nope"]) == 1
    assert "no meter 'nope'" in capsys.readouterr().err
    assert main(["backfill", "-c", config, "--from", "2026-13-01"]) == 1
    assert "is not a date" in capsys.readouterr().err


def test_the_progress_bar_counts_chunks() -> None:
    import io

    from amr.collector.backfill import ChunkDone
    from amr.collector.backfill_command import ProgressBar

    out = io.StringIO()
    bar = ProgressBar(4, out)
    bar(ChunkDone("41000051", NOW, NOW, 8, None))
    bar(ChunkDone("41000051", NOW, NOW, 0, "no answer"))
    assert out.getvalue().split("\r")[-1].startswith("[" + "#" * 15 + "." * 15 + "] 2/4 chunks!")
