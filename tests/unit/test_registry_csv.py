"""Reading meters from CSV for the registry: every bad row named by line and column, nothing taken half."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from amr.errors import InputError
from amr.registry.csvfile import read_meters, write_meters

KINDS = {"tcp": "modbus-tcp", "merc": "mercury230"}
HEADER = "serial,name,point,accounts,ct_ratio,bus,address,settings\n"


def _file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "meters.csv"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_cells_are_read_as_the_toml_writes_them(tmp_path: Path) -> None:
    path = _file(tmp_path, HEADER
                 + 'A1,кв. 1,p1,1001;1002,"[{ ratio = 40 }, { since = 2026-03-01, ratio = 80 }]",tcp,5,'
                 + '"{ profile = ""eastron-sdm630"" }"\n'
                 + 'B2,кв. 2,p2,,1,merc,"""17""","{ password = ""111111"" }"\n\n')
    entries, lines = read_meters(path, KINDS)
    assert lines == {"A1": 2, "B2": 3}
    first, second = entries
    assert first["accounts"] == ["1001", "1002"] and first["address"] == 5 and first["profile"] == "eastron-sdm630"
    assert first["ct_ratio"][1]["ratio"] == 80 and str(first["ct_ratio"][1]["since"]) == "2026-03-01"
    assert second["address"] == "17" and second["password"] == "111111" and "accounts" not in second


def test_every_bad_row_is_named_with_its_line_and_column(tmp_path: Path) -> None:
    path = _file(tmp_path, HEADER
                 + "A1,,p1,,-4,tcp,1,\n"                      # a ratio is positive; no profile or registers
                 + "A2,,p2,,1,tcp,2\n"                       # a cell short
                 + 'A3,,p3,,"[{ ratio = }]",tcp,3,\n'         # not inline TOML
                 + 'A4,,p4,,1,merc,4,"{ profile = ""x"" }"\n'  # a Modbus key on a Mercury bus
                 + 'A4,,p5,,1,merc,5,\n')                     # the serial again
    with pytest.raises(InputError) as caught:
        read_meters(path, KINDS)
    text = str(caught.value)
    assert f"{path}:2: column ct_ratio: a transformer ratio is a positive number" in text
    assert f"{path}:2: a Modbus meter needs profile = one of" in text
    assert f"{path}:3: 7 cells, the header names 8; quote cells holding a comma" in text
    assert f"{path}:4: column ct_ratio: not an inline TOML value" in text
    assert f"{path}:5: column settings: profile: unknown key; a meter on a mercury230 bus takes" in text
    assert f"{path}:6: column serial: 'A4' is on line 5 too; a serial names one meter" not in text  # line 5 failed
    assert len(text.splitlines()) == 5


def test_a_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not UTF-8 text"):
        read_meters(_file(tmp_path, b"serial\n\xff\n"), KINDS)
    with pytest.raises(InputError, match=r":1: unknown column\(s\) colour; the header names columns of serial"):
        read_meters(_file(tmp_path, "serial,colour\nA1,red\n"), KINDS)
    with pytest.raises(InputError, match=r":1: no serial column"):
        read_meters(_file(tmp_path, "name\nx\n"), KINDS)
    with pytest.raises(InputError, match="no such file"):
        read_meters(tmp_path / "absent.csv", KINDS)


def test_written_rows_read_back_the_same(tmp_path: Path) -> None:
    entries = [{"serial": "A1", "name": "кв. 1, подъезд 2", "accounts": ["1001"], "ct_ratio": Decimal("0.5"),
                "bus": "merc", "address": "17", "password": 'pa"ss'}]
    path = tmp_path / "out.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        assert write_meters(out, entries) == 1
    back, _ = read_meters(path, KINDS)
    assert back == [{**entries[0], "ct_ratio": "0.5"}]  # a plain cell is text; the configuration's model reads it
