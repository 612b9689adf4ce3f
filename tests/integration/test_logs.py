"""Log lines are stamped in the site's time zone with its offset, not the server's clock."""

from __future__ import annotations

import http.client
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from amr.core.logs import SiteTimeFormatter
from tests.api.live import free_port


def _record(moment: datetime) -> logging.LogRecord:
    record = logging.LogRecord("amr.collector", logging.WARNING, __file__, 1, "meter %s offline", ("MB-1",), None)
    record.created = moment.timestamp()
    return record


def test_a_line_is_stamped_in_the_site_zone_with_its_offset() -> None:
    formatter = SiteTimeFormatter(ZoneInfo("Asia/Yekaterinburg"))
    line = formatter.format(_record(datetime(2026, 1, 31, 9, 30, 5, 250_000, tzinfo=UTC)))
    assert line == "2026-01-31 14:30:05.250+05:00 WARNING amr.collector: meter MB-1 offline"


def test_a_short_stamp_is_the_local_time_of_day() -> None:
    formatter = SiteTimeFormatter(ZoneInfo("Europe/Moscow"), datefmt="%H:%M:%S")
    assert formatter.format(_record(datetime(2026, 7, 1, 21, 0, tzinfo=UTC))).startswith("00:00:00 WARNING")


def test_the_collector_logs_in_the_site_zone(tmp_path: Path) -> None:
    config = tmp_path / "amr.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "amr.db"}"\n[site]\ntimezone = "Asia/Kamchatka"\n'
        '[[buses]]\nname = "b"\nkind = "modbus-tcp"\nurl = "tcp://127.0.0.1:9"\ntimeout = "1s"\n'
        '[[meters]]\nserial = "MB-1"\nbus = "b"\naddress = 1\nprofile = "eastron-sdm630"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "amr", "collect", "--once", "-c", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    warnings = [line for line in done.stderr.splitlines() if " WARNING " in line]
    assert warnings, done.stderr
    assert all(line[23:29] == "+12:00" for line in warnings), warnings


def test_the_api_workers_log_in_the_site_zone(tmp_path: Path) -> None:
    config = tmp_path / "amr.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "amr.db"}"\n[site]\ntimezone = "Asia/Kamchatka"\n', encoding="utf-8"
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "amr", "api", "-c", str(config), "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert process.poll() is None and time.monotonic() < deadline, "amr api did not answer /healthz"
            time.sleep(0.2)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    lines = [line for line in err.splitlines() if " uvicorn." in line]
    assert any("Started server process" in line for line in lines), err  # a worker's own line
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in lines), err
    assert all(line[23:29] == "+12:00" for line in lines), lines


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
    except OSError:
        return False
    return ok
