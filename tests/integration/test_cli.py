"""The `amr` command line end to end on a real store (SQLite file and the real PostgreSQL)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from amr.cli import main

ROOT = Path(__file__).parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ROOT / "config" / "example.toml", tmp_path / "amr.toml")
    shutil.copy(ROOT / "config" / "sample-readings.csv", tmp_path / "readings.csv")
    if request.param == "postgres":
        store = request.getfixturevalue("postgres_store")
        from tests.conftest import _clean

        _clean(store)
        monkeypatch.setenv("AMR_DATABASE_URL", request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.setenv("AMR_DATABASE_URL", f"sqlite:///{tmp_path / 'amr.sqlite'}")
    return tmp_path / "amr.toml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_summary_and_what_it_stored(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "import", "-c", str(config), str(config.parent / "readings.csv"), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["accepted"] == 296 and summary["duplicate"] == 1
    assert summary["flagged"] == {"rollover": 1}
    assert summary["rejected"] == {
        "before_installation": 1,
        "conflict": 1,
        "future_timestamp": 1,
        "lower_than_previous": 1,
        "malformed": 1,
        "unknown_meter": 1,
    }

    again = json.loads(run(capsys, "import", "-c", str(config), str(config.parent / "readings.csv"), "--json")[1])
    assert again["accepted"] == 0 and again["duplicate"] == 297  # re-import: nothing doubled

    code, out, _ = run(capsys, "readings", "-c", str(config), "--meter", "01123457", "--json")
    rows = json.loads(out)
    assert len(rows) == 145
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    wrapped = [r for r in rows if "rollover" in r["flags"]]
    assert len(wrapped) == 1 and wrapped[0]["a_plus"] == "0.400"

    code, out, _ = run(capsys, "rejected", "-c", str(config), "--json")
    refused = json.loads(out)
    assert len(refused) == 6  # kept once although imported twice
    malformed = next(r for r in refused if r["reasons"] == ["malformed"])
    assert "line 300" in malformed["message"] and malformed["payload"]["timestamp"] == "yesterday"


def test_consumption_across_a_replacement_and_a_wrap(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "import", "-c", str(config), str(config.parent / "readings.csv"), "--json")
    args = ["--step", "day", "--from", "2026-01-01", "--to", "2026-01-02", "--json"]
    code, out, _ = run(capsys, "consumption", "-c", str(config), "--point", "lenina5-kv12", *args)
    assert code == 0
    days = json.loads(out)
    assert [d["value"] for d in days] == ["11.700", "23.100"]
    assert all(d["complete"] for d in days)
    _, out, _ = run(capsys, "consumption", "-c", str(config), "--meter", "01123457", *args)
    assert [d["value"] for d in json.loads(out)] == ["115.200", "115.200"]


def test_override_a_refused_reading(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "import", "-c", str(config), str(config.parent / "readings.csv"), "--json")
    refused = json.loads(run(capsys, "rejected", "-c", str(config), "--json")[1])
    conflict = next(r for r in refused if r["reasons"] == ["conflict"])
    code, out, _ = run(
        capsys, "accept", "-c", str(config), str(conflict["id"]), "--reason", "photo", "--actor", "ivanov"
    )
    assert code == 0 and "accepted" in out
    rows = json.loads(run(capsys, "readings", "-c", str(config), "--meter", "5501001", "--json")[1])
    assert rows[0]["a_plus"] == "15230.900" and rows[0]["flags"] == ["overridden"]
    code, _, err = run(capsys, "accept", "-c", str(config), str(conflict["id"]), "--reason", "again")
    assert code == 1 and "already accepted" in err


def test_bad_input_gets_a_clear_error(config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("meter,when,a_plus\n1,2,3\n", encoding="utf-8")
    code, _, err = run(capsys, "import", "-c", str(config), str(bad))
    assert code == 1
    assert "missing column(s) timestamp, tariff" in err and "unknown column(s) when" in err
    code, _, err = run(capsys, "readings", "-c", str(config), "--meter", "nope")
    assert code == 1 and "no meter with serial 'nope'" in err
    broken = tmp_path / "broken.toml"
    broken.write_text('[site]\ntimezone = "Nowhere"\n', encoding="utf-8")
    code, _, err = run(capsys, "check-config", "-c", str(broken))
    assert code == 2 and "site.timezone" in err


def test_human_output(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "import", "-c", str(config), str(config.parent / "readings.csv"))
    assert code == 0 and "accepted   296" in out and "lower_than_previous: 1" in out
    code, out, _ = run(capsys, "db", "upgrade", "-c", str(config))
    assert code == 0 and "database at revision" in out
