"""Readings as CSV: ``meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus[,source]``.

Timestamps are ISO 8601 with an offset; values are kWh/kvarh at the primary side
with a decimal point; an empty cell is an absent channel. A malformed row becomes a
reading refused as `malformed`, naming its line; the other rows still go in.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from amr.domain import CHANNELS, Channel, IncomingReading, Source, wh_from_kwh
from amr.errors import InputError

REQUIRED = ("meter", "timestamp", "tariff", "a_plus", "a_minus", "r_plus", "r_minus")
OPTIONAL = ("source",)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"timestamp {text!r} is not ISO 8601; write e.g. 2026-01-31T00:00:00+03:00"
        ) from None
    if value.tzinfo is None:
        raise InputError(f"timestamp {text!r} has no UTC offset; add one, e.g. {text.strip()}+03:00")
    return value.astimezone(UTC)


def _value(channel: Channel, text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if "," in text and "." not in text:
        raise InputError(f"{channel.value} {text!r}: use a decimal point, e.g. {text.replace(',', '.')}")
    try:
        return wh_from_kwh(text)
    except InputError as exc:
        raise InputError(f"{channel.value}: {exc}") from None


def check_header(fields: list[str] | None, name: str) -> None:
    """Raise `InputError` when the header lacks a required column or has an unknown one."""
    if not fields:
        raise InputError(f"{name}: empty file; the first line must be the header {','.join(REQUIRED)}")
    header = [f.strip() for f in fields]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise InputError(f"{name}: {'; '.join(parts)}; the header is {','.join(REQUIRED)}[,source]")


def parse_row(
    row: dict[str, str | None], line: int, default_source: Source, received_at: datetime
) -> IncomingReading:
    """One CSV row as an incoming reading; problems are kept on it, not raised."""
    clean = {k.strip(): (v or "") for k, v in row.items() if k is not None}
    payload: dict[str, object] = {"line": line, **clean}
    problems: list[str] = []
    if None in row:
        problems.append(f"line {line}: more cells than columns")
    meter = clean.get("meter", "").strip()
    if not meter:
        problems.append(f"line {line}: meter is empty; give the meter's serial number")
    ts: datetime | None = None
    try:
        ts = _timestamp(clean.get("timestamp", ""))
    except InputError as exc:
        problems.append(f"line {line}: {exc}")
    tariff = 0
    tariff_text = clean.get("tariff", "").strip() or "0"
    if tariff_text.isdigit() and int(tariff_text) <= 4:
        tariff = int(tariff_text)
    else:
        problems.append(f"line {line}: tariff {tariff_text!r} is not 0 (total) or 1..4")
    values: dict[Channel, int | None] = {}
    for channel in CHANNELS:
        try:
            values[channel] = _value(channel, clean.get(channel.value, ""))
        except InputError as exc:
            values[channel] = None
            problems.append(f"line {line}: {exc}")
    source = default_source
    source_text = clean.get("source", "").strip()
    if source_text:
        try:
            source = Source(source_text)
        except ValueError:
            known = ", ".join(s.value for s in Source)
            problems.append(f"line {line}: unknown source {source_text!r}; use one of {known}")
    return IncomingReading(
        meter=meter,
        ts=ts,
        tariff=tariff,
        values=values,
        source=source,
        payload=payload,
        problems=tuple(problems),
        received_at=received_at,
    )


def read_readings(
    stream: IO[str], name: str = "readings.csv", source: Source = Source.IMPORT
) -> Iterator[IncomingReading]:
    """Incoming readings from CSV text; the header is checked first."""
    reader = csv.DictReader(stream)
    check_header(list(reader.fieldnames or []), name)
    received_at = datetime.now(UTC)
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        yield parse_row(row, reader.line_num, source, received_at)


def count_rows(path: Path) -> int:
    """Data rows in a CSV file (for a progress bar)."""
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)
