"""`amr demo` end to end: one process brings up simulated meters of every protocol, the collector,
the API and the dashboard; live readings arrive from Modbus, serial (Mercury, IEC) and MQTT
meters; Ctrl-C (SIGINT) stops it all cleanly with exit code 0."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
START_LIMIT = 60.0  # seconds until the dashboard URL is printed
LIVE_LIMIT = 90.0  # seconds until live readings of every protocol arrived
SOURCES = ("askue:modbus", "askue:serial", "askue:mqtt", "askue:dlms")


class Demo:
    """The demo subprocess with its output collected by a reader thread."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "amr", "demo", "--dir", str(folder), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def output(self) -> str:
        return "".join(self.out)

    def wait_for(self, pattern: str, limit: float) -> re.Match[str]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output(), re.MULTILINE)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(
            f"`amr demo` did not print {pattern!r} within {limit} s (exit {self.process.poll()}):\n"
            f"{self.output()}\n--- stderr ---\n{''.join(self.err)}"
        )

    def finish(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code

    def kill(self) -> None:
        """Kill the demo if it still runs; close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for thread in self._threads:
            thread.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only: the demo's own API
        return json.loads(answer.read())


@pytest.mark.slow
def test_demo_collects_every_protocol_serves_the_dashboard_and_stops_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    started = datetime.now(UTC)
    demo = Demo(folder)
    try:
        url = demo.wait_for(r"Dashboard: (http://127\.0\.0\.1:\d+/)", START_LIMIT).group(1)
        password = demo.wait_for(r"^\s+dispatcher\s+/\s+(\S+)", 5).group(1)
        config = folder / "amr-demo.toml"
        assert config.is_file() and "[[buses]]" in config.read_text(encoding="utf-8")

        with urllib.request.urlopen(url, timeout=10) as page:  # / redirects to /dashboard/
            html = page.read().decode("utf-8")
            assert page.url.endswith("/dashboard/")
        assert "АСКУЭ" in html and "app.js" in html
        with urllib.request.urlopen(url + "dashboard/app.js", timeout=10) as script:
            assert script.status == 200

        token = call(url + "api/v1/auth/token", body={"login": "dispatcher", "password": password})["access_token"]
        deadline = time.monotonic() + LIVE_LIMIT
        live: dict[str, str] = {}
        while time.monotonic() < deadline and set(live) != set(SOURCES):
            for meter in call(url + "api/v1/dashboard/meters", token):
                last = meter["last_reading"]
                if meter["source"] in SOURCES and last and datetime.fromisoformat(last) > started:
                    live.setdefault(meter["source"], meter["serial"])
            if set(live) != set(SOURCES):
                time.sleep(2)
        assert set(live) == set(SOURCES), (
            f"live readings arrived only from {sorted(live)} within {LIVE_LIMIT} s\n{demo.output()}"
            f"\n--- stderr ---\n{''.join(demo.err)}"
        )

        summary = call(url + "api/v1/dashboard/summary", token)
        assert summary["meters"] == 14 and summary["readings_today"] > 0
        # ME-303 stops answering: its first failed poll may come after every protocol has delivered.
        while not (summary["status"]["offline"] or summary["status"]["degraded"]) and time.monotonic() < deadline:
            time.sleep(1)
            summary = call(url + "api/v1/dashboard/summary", token)
        assert summary["status"]["offline"] >= 1 or summary["status"]["degraded"] >= 1
        # MB-103's map asks for a register its meter lacks: its page says which and what the meter answered
        partial: list[dict[str, Any]] = []
        while not partial and time.monotonic() < deadline:
            detail = call(url + "api/v1/dashboard/meters/MB-103", token)
            partial = [p for p in detail["problems"] if p["kind"] == "partial"]
            if not partial:
                time.sleep(1)
        assert partial, f"MB-103 shows no partial answer: {detail['problems']}"
        assert detail["health"]["status"] == "degraded"
        [missing] = partial[0]["missing"]
        assert "T1 A+" in missing["channels"] and "illegal data address" in missing["answer"]
        assert any(p["missing"] for p in detail["polls"] if p["ok"])
        flagged = call(url + "api/v1/meters/ME-302/readings?limit=1000&tariff=0&from=2000-01-01", token)
        assert any("rollover" in r["flags"] for r in flagged["items"])
        refused = call(url + "api/v1/dashboard/rejected", token)
        assert refused["total"] >= 1 and refused["items"][0]["reasons"][0]["code"] == "lower_than_previous"
        # ME-301's clock is corrected after its first poll and its journals read: the events show both
        codes: set[str] = set()
        while not {"clock.corrected", "tamper.cover_opened"} <= codes and time.monotonic() < deadline:
            codes = {e["code"] for e in call(url + "api/v1/meters/ME-301/events", token)["items"]}
            if not {"clock.corrected", "tamper.cover_opened"} <= codes:
                time.sleep(1)
        assert {"clock.corrected", "tamper.cover_opened", "power.off"} <= codes, codes
        # DL-602's clock, 4 minutes ahead, is shifted back (shift_time, as the configurator)
        dlms_codes: set[str] = set()
        while "clock.corrected" not in dlms_codes and time.monotonic() < deadline:
            dlms_codes = {e["code"] for e in call(url + "api/v1/meters/DL-602/events", token)["items"]}
            if "clock.corrected" not in dlms_codes:
                time.sleep(1)
        assert "clock.corrected" in dlms_codes, dlms_codes

        # DL-601's relay, commanded through the API, is switched by the collector and read back
        command = call(url + "api/v1/dispatch/meters/DL-601/relay", token, {"action": "disconnect", "reason": "демо"})
        while command["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            command = call(url + f"api/v1/dispatch/relay-commands/{command['id']}", token)
        assert (command["status"], command["state"]) == ("done", "disconnected"), command
        assert call(url + "api/v1/meters/MB-101/quality", token)["samples"]  # read at the collector's start

        demo.process.send_signal(signal.SIGINT)
        code = demo.finish()
    finally:
        demo.kill()
    errors = "".join(demo.err)
    assert code == 0, f"exit {code}\n{demo.output()}\n--- stderr ---\n{errors}"
    assert "Traceback" not in errors, errors
    assert "demo stopped" in demo.output()


def test_builtin_broker_carries_the_gateways_messages_to_the_mqtt_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no broker can be had, the demo runs its own: the collector's MQTT 5 driver (manual
    acknowledgement) gets what the simulated gateway (MQTT 3.1.1, QoS 1) publishes through it."""
    import asyncio

    from amr.config import config_from_dict
    from amr.demo.broker import answers_mqtt, free_port, mqtt_broker
    from amr.demo.minibroker import MiniBroker
    from amr.drivers.base import MeterValues
    from amr.drivers.mqtt.driver import MqttDriver
    from simulators.model import VirtualMeter
    from simulators.mqtt_publisher import MqttPublisher

    async def scenario() -> tuple[list[MeterValues], str]:
        async with MiniBroker() as broker:
            config = config_from_dict(
                {"buses": [{"name": "gw", "kind": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}",
                            "topics": ["amr/demo/t/+/energy"], "client_id": "amr-test"}],
                 "meters": [{"serial": "G1", "bus": "gw", "tariffs": 2}]},
                environ={},
            )
            driver = MqttDriver(config.buses[0], config.meters)
            got: list[MeterValues] = []

            async def sink(values: MeterValues) -> None:
                got.append(values)

            task = asyncio.create_task(driver.run(sink))
            await driver.wait_subscribed(10)
            meter = VirtualMeter("G1", tariffs=2)
            publisher = MqttPublisher([meter], topic="amr/demo/t/{serial}/energy", port=broker.port)
            await asyncio.to_thread(publisher.connect)  # paho waits for CONNACK: not on the broker's loop
            try:
                await asyncio.to_thread(publisher.publish_round)
            finally:
                await asyncio.to_thread(publisher.close)
            async with asyncio.timeout(10):
                while not got:
                    await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # a broker answering on the configured port is used as it is
            monkeypatch.setenv("AMR_DEMO_MQTT_PORT", str(broker.port))
            async with mqtt_broker(tmp_path) as chosen:
                kind = chosen.kind
        return got, kind

    found: list[tuple[list[MeterValues], str]] = []
    # in a thread of its own: a sync Playwright session of the browser tests may own this thread's loop
    worker = threading.Thread(target=lambda: found.append(asyncio.run(asyncio.wait_for(scenario(), 30))))
    worker.start()
    worker.join(40)
    assert found, "the built-in broker scenario did not finish"
    values, kind = found[0]
    assert values[0].serial == "G1" and set(values[0].tariffs) == {0, 1, 2}
    assert kind == "existing"
    assert not answers_mqtt(free_port(), 0.5)
