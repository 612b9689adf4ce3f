"""Reading the import CSV: the column-wise reading of usual rows agrees with the careful one."""

from __future__ import annotations

import io

from amr.core.domain import Channel, Source
from amr.ingest.csvfile import BLOCK, read_readings

HEADER = "meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus,source\n"


def read(text: str | bytes) -> list:  # type: ignore[type-arg]
    data = text.encode() if isinstance(text, str) else text
    return list(read_readings(io.BytesIO(data), "t.csv"))


def test_values_of_every_usual_form_are_exact_wh() -> None:
    body = "".join(
        f"M1,2026-01-01T0{i}:00:00+03:00,0,{v},,,\n"
        for i, v in enumerate(["1234.567", "1234.5", "7", "0.05", " 12.000 "])
    )
    readings = read(HEADER.replace(",source", "") + body)
    assert [r.values[Channel.A_PLUS] for r in readings] == [1_234_567, 1_234_500, 7_000, 50, 12_000]
    assert all(not r.problems and r.values[Channel.A_MINUS] is None for r in readings)


def test_columns_of_three_decimals_are_exact_wh_with_and_without_a_leading_zero() -> None:
    big = "999999999999999.999"  # 15 digits and 3 decimals: the largest a usual cell holds
    for first in ("1.000", "0.250"):  # 0.250 leaves 0250, which the one-array reading of a column refuses
        values = [first, "1234.567", big, "20.005"]
        body = "".join(f"M1,2026-01-01T0{i}:00:00+03:00,0,{v},,{v},\n" for i, v in enumerate(values))
        readings = read(HEADER.replace(",source", "") + body)
        wh = [int(v.replace(".", "")) for v in values]
        assert [r.values[Channel.A_PLUS] for r in readings] == wh
        assert [r.values[Channel.R_PLUS] for r in readings] == wh
        assert all(not r.problems for r in readings)


def test_line_numbers_hold_across_blocks_blank_lines_and_quoted_line_breaks() -> None:
    rows = [f'M{i % 3},2026-01-01T00:{i % 60:02d}:00+03:00,0,{i}.000,,,,\n' for i in range(BLOCK + 10)]
    rows.insert(5, "\n")
    rows.insert(BLOCK + 2, '"M1\nM2",2026-01-01T00:00:00+03:00,0,1.000,,,,\n')
    readings = read(HEADER + "".join(rows))
    assert len(readings) == BLOCK + 11
    assert readings[4].payload["line"] == 6 and readings[5].payload["line"] == 8  # the blank line 7 skipped
    odd = next(r for r in readings if r.meter == "M1\nM2")
    assert odd.payload["line"] == BLOCK + 5  # the row starts on line BLOCK + 4 and ends on the next
    after = readings[readings.index(odd) + 1]
    assert after.payload["line"] == BLOCK + 6


def test_line_numbers_after_crlf_breaks_in_quotes_bad_bytes_and_a_quote_open_at_the_end() -> None:
    row = "M1,2026-01-01T00:00:00+03:00,0,1.000,,,,\r\n"
    text = HEADER.encode() + (
        row.encode()
        + b'"M1\r\nM2\rM3",2026-01-01T00:00:00+03:00,0,1.000,,,,\r\n'  # lines 3-5
        + row.replace("M1", "M\xff").encode("latin-1")  # line 6: not UTF-8
        + row.encode()
        + b'M9,"2026\n'  # line 8: a quote never closed takes the rest of the file
    )
    readings = read(text)
    assert [r.payload["line"] for r in readings] == [2, 5, 6, 7, 8]
    assert "line 6: byte 0xFF" in readings[2].problems[0] and readings[3].problems == ()
    assert readings[4].problems and all(p.startswith("line 8:") for p in readings[4].problems)


def test_a_quoted_line_break_in_a_value_among_usual_values_is_refused_not_read_as_two() -> None:
    body = "".join(f"M1,2026-01-01T0{i}:00:00+03:00,0,{i}.000,,,,\n" for i in range(5))
    body += 'M1,2026-01-01T06:00:00+03:00,0,"6.000\n7.000",,,,\n'  # lines 7-8
    body += "M1,2026-01-01T08:00:00+03:00,0,8.000,,,,\n"
    readings = read(HEADER + body)
    assert [r.values[Channel.A_PLUS] for r in readings] == [0, 1_000, 2_000, 3_000, 4_000, None, 8_000]
    assert "line 8: a_plus" in readings[5].problems[0] and readings[6].problems == ()


def test_odd_cells_among_usual_ones_are_refused_by_line_and_the_rest_read() -> None:
    body = (
        "M1,2026-01-01T00:00:00+03:00,0,1.000,,,,\n"
        "M1,2026-01-01T00:30:00+03:00,0,1_000.000,,,,\n"
        "M1,2026-01-01T01:00:00+03:00,7,2.000,,,,\n"
        "M1,yesterday,0,2.000,,,,\n"
        ",2026-01-01T01:30:00+03:00,0,2.000,,,,\n"
        "M1,2026-01-01T02:00:00+03:00,0,3.000,,,,mobile\n"
        "M1,2026-01-01T02:30:00+03:00,0,3.000,,,,fax\n"
        "M1,2026-01-01T03:00:00+03:00,0,-3.000,,,,\n"
    )
    readings = read(HEADER + body)
    problems = {r.payload["line"]: r.problems for r in readings}
    assert problems[2] == () and problems[7] == () and readings[5].source is Source.MOBILE
    assert "write it like 1234.567" in problems[3][0] and "line 3" in problems[3][0]
    assert "tariff '7'" in problems[4][0]
    assert "timestamp 'yesterday'" in problems[5][0]
    assert "meter is empty" in problems[6][0]
    assert "unknown source 'fax'" in problems[8][0]
    assert problems[9] == () and readings[7].values[Channel.A_PLUS] == -3000  # the pipeline refuses it


def test_a_bom_and_a_file_without_a_final_line_break() -> None:
    readings = read(b"\xef\xbb\xbf" + HEADER.encode() + b"M1,2026-01-01T00:00:00+03:00,0,1.000,,,,")
    assert len(readings) == 1 and readings[0].values[Channel.A_PLUS] == 1000 and not readings[0].problems
