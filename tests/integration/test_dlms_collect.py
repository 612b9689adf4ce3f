"""`amr collect --once --json` on the configuration `amr sim dlms` prints: every DLMS meter read, as processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_collect_once_reads_every_meter_amr_sim_dlms_configures(tmp_path: Path, framing: str) -> None:
    snippet = tmp_path / "sim.toml"
    sim = subprocess.Popen(
        [sys.executable, "-m", "amr", "sim", "dlms", "--framing", framing, "--meters", "3", "--tariffs", "4",
         "--fault", "3:silent", "--config-out", str(snippet), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert sim.stdout is not None
        assert "3 simulated dlms-tcp meter(s)" in sim.stdout.readline()
        config = tmp_path / "amr.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{tmp_path / "amr.sqlite"}"\n[site]\ntimezone = "Europe/Moscow"\n\n'
            + snippet.read_text(encoding="utf-8"),
            encoding="utf-8",
        )
        done = subprocess.run([sys.executable, "-m", "amr", "collect", "-c", str(config), "--once", "--json"],
                              capture_output=True, text=True, timeout=120)
    finally:
        sim.send_signal(signal.SIGTERM)
        _, errors = sim.communicate(timeout=15)
    assert "Traceback" not in errors
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    by_serial = {m["serial"]: m for m in report["meters"]}
    for serial in ("SIM0001", "SIM0002"):
        assert by_serial[serial]["ok"] and by_serial[serial]["values"]["a_plus"] is not None
    silent = by_serial["SIM0003"]
    assert not silent["ok"] and silent["error_kind"] == "ReadTimeout" and silent["attempts"] == 3
    assert report["answered"] == 2 and report["accepted"] == 2 * 5  # the total and four tariffs each
