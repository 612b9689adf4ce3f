"""`amr sim` serves virtual meters on real transports and prints a configuration that polls them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from amr.config import config_from_dict
from amr.drivers import poll_driver


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "amr", "sim", *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert " at " in line, process.stderr.read() if process.stderr else line
    return process, line.split(" at ")[1].split(";")[0]


@pytest.mark.parametrize("kind", ["modbus-tcp", "mercury230"])
def test_sim_serves_meters_the_printed_configuration_can_poll(kind: str, tmp_path: Path) -> None:
    config_file = tmp_path / "sim.toml"
    process, url = start(kind, "--meters", "3", "--fault", "2:silent", "--config-out", str(config_file))
    try:
        config = config_from_dict(tomllib.loads(config_file.read_text(encoding="utf-8")), environ={})
        assert config.buses[0].url == url
        bus = config.buses[0].model_copy(update={"timeout": config.buses[0].timeout / 2})

        async def poll() -> list[str]:
            driver = poll_driver(bus)
            await driver.open()
            outcomes = []
            try:
                for meter in config.meters:
                    try:
                        values = await driver.read(meter)
                        outcomes.append("ok" if values.tariffs[0] else "empty")
                    except Exception as exc:
                        outcomes.append(type(exc).__name__)
            finally:
                await driver.close()
            return outcomes

        assert asyncio.run(poll()) == ["ok", "ReadTimeout", "ok"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
        assert process.returncode == 0


def test_a_bad_fault_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "amr", "sim", "modbus-tcp", "--fault", "9:silent"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no simulated meter '9'" in result.stderr
