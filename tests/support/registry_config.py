"""A configuration of every bus kind (the demo's), for registry tests: written as TOML or given as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amr.demo.field import Field, config_data, specs, to_toml

URLS = {
    "modbus-tcp": "tcp://127.0.0.1:15020",
    "modbus-rtu": "/dev/ttyAMR0",
    "mercury230": "/dev/ttyAMR1",
    "iec62056-21": "socket://127.0.0.1:15021",
    "dlms-tcp": "tcp://127.0.0.1:15022",
}


def every_kind(database_url: str) -> dict[str, Any]:
    """The demo's buses and meters (every protocol, ratios, accounts, a DLMS password) on `database_url`."""
    data = config_data(Field(specs(), dict(URLS), run_id="test"), Path("."), "mqtt://127.0.0.1:1883", 8080)
    data["database"] = {"url": database_url}
    dlms = next(b for b in data["buses"] if b["kind"] == "dlms-tcp")
    dlms["dlms"] = {**dlms["dlms"], "authentication": "lls", "password": "s3cret-pass"}
    return data


def write(path: Path, data: dict[str, Any]) -> Path:
    """`data` as a TOML file at `path`."""
    path.write_text(to_toml(data, "registry test"), encoding="utf-8")
    return path
