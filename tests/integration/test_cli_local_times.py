"""What a person reads from the `amr` command line is in the site's zone, with the offset shown."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from amr.cli import main

ROOT = Path(__file__).parents[2]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """example.toml (Europe/Moscow) over a SQLite file holding the sample readings."""
    shutil.copy(ROOT / "config" / "example.toml", tmp_path / "amr.toml")
    monkeypatch.setenv("AMR_DATABASE_URL", f"sqlite:///{tmp_path / 'amr.sqlite'}")
    assert main(["import", "-c", str(tmp_path / "amr.toml"), str(ROOT / "config" / "sample-readings.csv")]) == 0
    capsys.readouterr()
    return tmp_path / "amr.toml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_refusal_messages_give_times_in_the_site_zone(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "rejected", "-c", str(config))
    assert "times in Europe/Moscow" in out
    lines = {line.split()[4]: line for line in out.splitlines() if line.startswith("#")}
    # the previous reading 2026-01-02 12:00 Moscow time is 09:00 UTC
    assert "previous accepted reading 122.800 kWh of 2026-01-02 12:00+03:00" in lines["lower_than_previous"]
    assert "installed at 2026-01-02 12:00+03:00" in lines["before_installation"]
    assert "a reading for 2026-01-01 00:00+03:00 is already stored" in lines["conflict"]
    future = lines["future_timestamp"]
    assert "2036-01-01 00:00+03:00 is later than now (" in future and "clock tolerance of 5 min" in future
    # no UTC ISO strings in what a person reads
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", out)
    # the machine form keeps UTC ISO timestamps
    data = run(capsys, "rejected", "-c", str(config), "--json")
    assert '"timestamp": "2026-01-02T09:05:00+00:00"' in data


def test_consumption_shows_a_day_without_readings_as_the_whole_day(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(
        capsys, "consumption", "-c", str(config), "--meter", "01123457", "--from", "2026-01-03", "--to", "2026-01-04"
    )
    rows = out.splitlines()[1:]
    assert rows[0].startswith("2026-01-03T00:00") and "gap" not in rows[0]
    assert rows[1].startswith("2026-01-04T00:00") and rows[1].endswith("no readings")
    assert "00:00…00:00" not in out


def test_consumption_shows_a_gap_over_days_with_its_dates(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "consumption", "-c", str(config), "--meter", "01123457", "--step", "month",
              "--from", "2026-01-01", "--to", "2026-01-31")
    january = out.splitlines()[1]
    assert january.startswith("2026-01-01T00:00") and january.endswith("gap 2026-01-04 00:00…2026-01-31 24:00")
