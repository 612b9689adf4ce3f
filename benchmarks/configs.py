"""The configuration the sweep benchmarks poll with: their buses and meters over a throwaway SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amr.config import Config, config_from_dict


def sqlite_config(buses: list[dict[str, Any]], meters: list[dict[str, Any]], directory: Path) -> Config:
    """`buses` and `meters` with a store and the collector's buffer in `directory`."""
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{directory / 'amr.sqlite'}"},
        "buses": buses,
        "meters": meters,
        "collector": {"buffer": str(directory / "buffer.sqlite")},
    }
    return config_from_dict(data, environ={}, file=directory / "amr.toml")
