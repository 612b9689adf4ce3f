"""`amr import` run as a user runs it (a process on a file), on SQLite and the real PostgreSQL:
every row of the file is either stored or kept as refused, whatever is wrong with some of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _clean

HEADER = b"meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus\n"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
METERS = ("M1", "M2", "M3")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        _clean(request.getfixturevalue("postgres_store"))
        yield request.getfixturevalue("postgres_url")
    else:
        yield f"sqlite:///{tmp_path / 'amr.sqlite'}"


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "amr.toml"
    meters = "".join(f'[[meters]]\nserial = "{m}"\ndigits = 8\ndecimals = 3\n' for m in METERS)
    config.write_text(f'[site]\ntimezone = "Europe/Moscow"\n{meters}', encoding="utf-8")
    return config


def good_rows(count: int) -> list[bytes]:
    """`count` valid rows, by time: every meter at 00:00, then at 00:30, ..."""
    rows = []
    for i in range(count):
        meter, step = METERS[i % len(METERS)], i // len(METERS)
        ts = (T0 + timedelta(minutes=30 * step)).isoformat()
        rows.append(f"{meter},{ts},0,{1000 + step}.5,,{step}.125,\n".encode())
    return rows


def run_import(tmp_path: Path, url: str, body: list[bytes]) -> dict[str, Any]:
    data = tmp_path / "readings.csv"
    data.write_bytes(HEADER + b"".join(body))
    env = {**os.environ, "AMR_DATABASE_URL": url, "AMR_DATABASE_BATCH_SIZE": "1000"}
    done = subprocess.run(
        [sys.executable, "-m", "amr", "import", "-c", str(write_config(tmp_path)), str(data), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return dict(json.loads(done.stdout))


def stored(url: str) -> tuple[int, list[dict[str, Any]]]:
    """Readings in the store, and the refused ones with reasons, message and payload."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
            refused = [
                {"reasons": r[0], "message": r[1], "payload": json.loads(r[2])}
                for r in conn.execute(text("SELECT reasons, message, payload FROM rejected_readings"))
            ]
    finally:
        engine.dispose()
    return int(count), refused


def test_a_line_that_is_not_utf8_is_refused_and_the_rest_goes_in(tmp_path: Path, database: str) -> None:
    body = good_rows(12_000)
    body[10_500] = body[10_500].replace(b"+00:00", b"+00:00\xa0", 1)  # a no-break space in cp1251
    summary = run_import(tmp_path, database, body)
    count, refused = stored(database)
    assert count == 11_999 and summary["accepted"] == 11_999
    assert count + len(refused) == 12_000
    (row,) = refused
    assert row["reasons"] == "malformed"
    line = 10_502  # header + 10,500 rows before it
    offset = len(HEADER) + sum(map(len, body[:10_500])) + body[10_500].index(b"\xa0")
    assert f"line {line}: byte 0xA0" in row["message"] and f"byte offset {offset}" in row["message"]
    assert "save the file as UTF-8" in row["message"]
    assert row["payload"]["line"] == line and row["payload"]["timestamp"].endswith("+00:00\\xa0")


def test_a_meter_cell_that_is_not_utf8_is_refused_as_malformed_naming_the_byte(tmp_path: Path, database: str) -> None:
    body = good_rows(10)
    body[4] = body[4].replace(b",", b"\xc0,", 1)  # a Cyrillic letter in cp1251 after the serial
    run_import(tmp_path, database, body)
    count, refused = stored(database)
    assert count == 9
    (row,) = refused
    assert row["reasons"].split(",")[0] == "malformed"
    assert "line 6: byte 0xC0" in row["message"] and "save the file as UTF-8" in row["message"]


def test_a_value_too_large_for_the_store_is_refused_and_the_rest_goes_in(tmp_path: Path, database: str) -> None:
    body = good_rows(999)
    body.insert(500, b"M1,2026-03-01T00:00:00+03:00,0,99999999999999999999.5,,,\n")
    summary = run_import(tmp_path, database, body)
    count, refused = stored(database)
    assert count == 999 and summary["accepted"] == 999
    assert count + len(refused) == 1000
    (row,) = refused
    assert row["reasons"] == "malformed"
    assert "line 502" in row["message"] and "too large" in row["message"]
    assert row["payload"]["a_plus"] == "99999999999999999999.5"


def test_numbers_in_other_forms_are_refused_by_line(tmp_path: Path, database: str) -> None:
    body = good_rows(30)
    body += [
        b"M1,2026-03-01T00:00:00+03:00,0,1_000.5,,,\n",
        "M2,2026-03-01T00:00:00+03:00,0,\u0661\u0662.5,,,\n".encode(),  # Arabic-Indic digits
        b"M3,2026-03-01T00:00:00+03:00,0,1e3,,,\n",
    ]
    run_import(tmp_path, database, body)
    count, refused = stored(database)
    assert count == 30 and len(refused) == 3
    assert sorted(r["payload"]["line"] for r in refused) == [32, 33, 34]
    assert all(r["reasons"] == "malformed" and "write it like 1234.567" in r["message"] for r in refused)


def test_a_tariff_in_other_digits_is_refused_by_line(tmp_path: Path, database: str) -> None:
    body = good_rows(10)
    body += [
        "M1,2026-03-01T00:00:00+03:00,\u0661,1.5,,,\n".encode(),
        "M2,2026-03-01T00:00:00+03:00,\uff12,1.5,,,\n".encode(),
    ]
    run_import(tmp_path, database, body)
    count, refused = stored(database)
    assert count == 10 and len(refused) == 2
    assert all(
        r["reasons"].split(",")[0] == "malformed" and "is not 0 (total) or 1..4" in r["message"] for r in refused
    )


def test_a_short_row_names_its_line_and_what_is_missing(tmp_path: Path, database: str) -> None:
    body = good_rows(20)
    body.insert(7, b"M2,2026-03-01T00:00:00+03:00,0\n")
    body.insert(9, b"M3,2026-03-01T00:00:00+03:00,0,1.5,,,,surplus\n")
    run_import(tmp_path, database, body)
    count, refused = stored(database)
    assert count == 20 and count + len(refused) == 22
    short = next(r for r in refused if r["payload"]["line"] == 9)
    assert short["reasons"] == "malformed"
    assert "line 9: 3 cell(s) for 7 columns; a_plus, a_minus, r_plus, r_minus missing" in short["message"]
    assert "no channel has a value" not in short["message"]
    long = next(r for r in refused if r["payload"]["line"] == 11)
    assert "line 11: 8 cells for 7 columns" in long["message"]
    assert long["payload"]["extra_cells"] == ["surplus"]


def test_a_well_formed_row_refused_by_validation_keeps_its_cells_and_line(tmp_path: Path, database: str) -> None:
    body = good_rows(30)
    body.insert(20, b"M3,2026-03-01T00:00:00+03:00,0,0.5,,7.125,\n")  # line 22: below M3's register
    body.insert(25, b"X9,2026-01-01T00:00:00+03:00,0,1.000,,,\n")  # line 27: no such meter
    summary = run_import(tmp_path, database, body)
    count, refused = stored(database)
    assert count == 30 and summary["refused"] == 2
    by_line = {r["payload"]["line"]: r for r in refused}
    assert by_line[22]["reasons"] == "lower_than_previous"
    assert by_line[22]["payload"] == {
        "meter": "M3", "timestamp": "2026-03-01T00:00:00+03:00", "tariff": "0",
        "a_plus": "0.5", "a_minus": "", "r_plus": "7.125", "r_minus": "", "line": 22,
    }
    assert by_line[27]["reasons"] == "unknown_meter" and by_line[27]["payload"]["meter"] == "X9"
