"""Meters of the registry as CSV: one meter a row, one key of its ``[[meters]]`` entry a column.

Columns (the header names them, in any order; only ``serial`` is required)::

    serial,name,object,point,model,accounts,digits,decimals,tariffs,ct_ratio,vt_ratio,max_power_kw,
    installed,removed,bus,address,timeout,retries,schedule,settings

A cell holds the value as the TOML would: text as it is (no quotes), numbers, dates
(``2026-03-01``) and times (``2026-03-01T00:00:00+03:00``). ``accounts`` lists accounts
separated by ``;``. A cell starting with ``[`` or ``{`` is an inline TOML array or table:
ratio steps (``[{ since = 2026-03-01, ratio = 40 }]``), a schedule (``{ every = "15m" }``) and
``settings``, the protocol's own keys of the meter's bus kind (``{ profile = "sdm630" }``).
An ``address`` of digits is a number (a Modbus unit id); in quotes (``"1001"``) it is text (an
IEC 62056-21 device address).
An empty cell is a key not given. Every row is validated as the configuration validates a
``[[meters]]`` entry, by its bus's kind; an error names the line, the column and the fix.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from amr.config import MeterConfig, _explain, _format_location
from amr.errors import InputError
from amr.registry.entries import Entry

COLUMNS = (
    "serial", "name", "object", "point", "model", "accounts", "digits", "decimals", "tariffs", "ct_ratio",
    "vt_ratio", "max_power_kw", "installed", "removed", "bus", "address", "timeout", "retries", "schedule",
    "settings",
)
_COMMON = frozenset(COLUMNS) - {"settings"}
_WHOLE = frozenset({"digits", "decimals", "tariffs", "retries"})


def _cell(column: str, text: str, where: str) -> Any:
    """The value a cell holds (see the module's description)."""
    if column == "accounts" and not text.startswith("["):
        return [a.strip() for a in text.split(";") if a.strip()]
    if text.startswith(("[", "{", '"')):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{where}: column {column}: not an inline TOML value ({exc}); "
                             'write e.g. [{ since = 2026-03-01, ratio = 40 }] or { every = "15m" }') from None
    if column in _WHOLE and text.lstrip("-").isdigit():
        return int(text)
    if column == "address" and text.isdigit():
        return int(text)  # a unit id or a bus address is a number (a text address keeps its letters)
    return text


def read_meters(path: Path, bus_kinds: dict[str, str]) -> tuple[list[Entry], dict[str, int]]:
    """The rows of `path` as meter entries, each validated by its bus's kind (`bus_kinds`: bus name →
    kind); the line of each serial. `InputError` listing every bad row's line, column and fix."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    unknown = [h for h in header if h not in COLUMNS]
    if "serial" not in header or unknown:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "no serial column"
        raise InputError(f"{path}:1: {problem}; the header names columns of {', '.join(COLUMNS)}")
    entries: list[Entry] = []
    lines: dict[str, int] = {}
    errors: list[str] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{line}"
        if len(row) != len(header):
            errors.append(f"{where}: {len(row)} cells, the header names {len(header)}; quote cells holding a comma")
            continue
        entry: Entry = {}
        try:
            for column, cell in zip(header, row, strict=True):
                if cell.strip():
                    value = _cell(column, cell.strip(), where)
                    if column == "settings":
                        if not isinstance(value, dict):
                            example = '{ profile = "sdm630" }'
                            raise InputError(f"{where}: column settings: write an inline table, e.g. {example}")
                        entry.update(value)
                    else:
                        entry[column] = value
        except InputError as exc:
            errors.append(str(exc))
            continue
        serial = str(entry.get("serial", ""))
        if serial in lines:
            errors.append(
                f"{where}: column serial: {serial!r} is on line {lines[serial]} too; a serial names one meter"
            )
            continue
        try:
            MeterConfig.model_validate(entry, context={"bus_kinds": bus_kinds})
        except ValidationError as exc:
            for error in exc.errors():
                message = str(error["msg"]).removeprefix("Value error, ")
                if not error["loc"]:
                    errors.append(f"{where}: {message}")
                    continue
                column = _format_location(tuple(error["loc"]))
                column = column if column.split(".")[0].split("[")[0] in _COMMON else f"settings: {column}"
                errors.append(f"{where}: column {column}: {_explain(error, message)}")
            continue
        lines[serial] = line
        entries.append(entry)
    if errors:
        raise InputError("\n".join(dict.fromkeys(errors)))
    return entries, lines


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, dict)):
        return _inline(value)
    return str(value)


def _inline(value: Any) -> str:
    """An inline TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return _text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else _inline(key)


def write_meters(out: io.TextIOBase | Any, entries: Iterable[Entry]) -> int:
    """Meter entries as CSV rows under the full header; how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for entry in entries:
        settings = {k: v for k, v in entry.items() if k not in _COMMON}
        row = []
        for column in COLUMNS:
            value = settings or None if column == "settings" else entry.get(column)
            if column == "address" and isinstance(value, str) and value.isdigit():
                value = [value]  # text of digits: written quoted (below), read back as text
            if column == "accounts":
                value = ";".join(value) if value and not any(";" in a for a in value) else value or None
            if column == "address" and isinstance(value, list):
                row.append(_inline(value[0]))
                continue
            row.append("" if value is None else _text(value))
        writer.writerow(row)
        count += 1
    return count


def entries_in_order(entries: Sequence[Entry]) -> list[Entry]:
    """Entries by serial (the order `export` writes)."""
    return sorted(entries, key=lambda e: str(e["serial"]))
