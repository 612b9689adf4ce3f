"""Log lines as a person reads them: stamped in the site's time zone, with its UTC offset.

A dispatcher reads the collector's log beside tables in local time; a bare machine-clock stamp
(often UTC on a server) would be three hours off in Moscow without saying so.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SiteTimeFormatter(logging.Formatter):
    """A formatter whose ``%(asctime)s`` is the record's moment in `tz`: ``2026-01-31 14:30:05.123+03:00``,
    or `datefmt` (an ``strftime`` format) of it when given."""

    def __init__(self, tz: tzinfo | str, fmt: str = LINE_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        moment = datetime.fromtimestamp(record.created, self.tz)
        if datefmt:
            return moment.strftime(datefmt)
        return moment.isoformat(sep=" ", timespec="milliseconds")


def log_to_stderr(level: int, tz: tzinfo, datefmt: str | None = None) -> bool:
    """Send log records of `level` and above to standard error, stamped in `tz`; False (and nothing
    changed) when the host process (or a test runner) has configured logging already."""
    root = logging.getLogger()
    if root.handlers:
        return False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SiteTimeFormatter(tz, datefmt=datefmt))
    root.addHandler(handler)
    root.setLevel(level)
    return True


def server_log_config(zone: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn (``log_config=``): every line, uvicorn's own included, on standard
    error stamped in the IANA `zone`; applied in each worker process of ``amr api --workers N`` too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"site": {"()": f"{__name__}.SiteTimeFormatter", "tz": zone}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "site", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": "INFO"},
    }


__all__ = ["LINE_FORMAT", "SiteTimeFormatter", "log_to_stderr", "server_log_config"]
