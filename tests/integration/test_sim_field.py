"""`amr sim` as field tools use it: the README's commands as processes, `--port`, whole frames per TCP segment."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from amr.config import config_from_dict
from amr.drivers import poll_driver
from amr.protocols import mercury230 as merc
from simulators.model import VirtualMeter
from simulators.serial_meters import MercurySimulator


def sim_process(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`amr sim ARGS --quiet` and the URL its first line announces."""
    process = subprocess.Popen(
        [sys.executable, "-m", "amr", "sim", *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if " at " not in line:
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"amr sim {' '.join(args)} did not start: {line}{err}")
    return process, line.split(" at ")[1].split(";")[0]


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    return err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_readme_mqtt_command_keeps_publishing_every_meter() -> None:
    """`amr sim mqtt --meters 50 --period 10s --payload tasmota-sml`, as the README writes it."""
    seen: dict[str, dict[str, object]] = {}
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"readme-{uuid.uuid4().hex[:8]}")
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe("amr/sim/+/energy", qos=1)

    def received(_: paho.Client, __: object, message: paho.MQTTMessage) -> None:
        seen[message.topic.split("/")[2]] = json.loads(message.payload)

    client.on_message = received
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        assert subscribed.wait(5)
        process, url = sim_process("mqtt", "--meters", "50", "--period", "10s", "--payload", "tasmota-sml")
        try:
            assert url == "mqtt://127.0.0.1:1883"
            deadline = time.monotonic() + 8
            wanted = {f"SIM{i:04d}" for i in range(1, 51)}
            while not wanted <= seen.keys() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert wanted <= seen.keys()
            assert "Total_in" in seen["SIM0001"]["SML"]  # type: ignore[operator]
            time.sleep(1)
            assert process.poll() is None  # still running, waiting for the next round
        finally:
            stop(process)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.parametrize("kind", ["mercury230", "iec62056-21"])
def test_serial_simulators_listen_on_the_port_given(kind: str) -> None:
    port = free_port()
    process, url = sim_process(kind, "--transport", "tcp", "--port", str(port), "--meters", "2")
    try:
        assert url == f"socket://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        stop(process)


def test_mercury_tcp_answer_arrives_in_one_recv() -> None:
    """A client reading one frame per ``recv()`` (as the mercury-base library does) gets whole frames."""

    def exchange(port: int) -> list[bytes]:
        frames = []
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for request in (merc.encode_open_request(7), merc.encode_energy_request(7)):
                sock.sendall(request)
                frames.append(sock.recv(64))
        return frames

    async def scenario() -> list[bytes]:
        meter = VirtualMeter("A", address=7, start=datetime(2026, 1, 1, tzinfo=UTC))
        async with MercurySimulator([meter], transport="tcp", baudrate=9600) as sim:
            return await asyncio.to_thread(exchange, int(sim.url.rsplit(":", 1)[1]))

    opened, energy = asyncio.run(asyncio.wait_for(scenario(), 20))
    merc.decode_status_answer(opened, 7)
    assert len(energy) == merc.ENERGY_ANSWER_LENGTH
    assert merc.decode_energy_answer(energy, 7)[merc.Channel.A_PLUS] is not None


def test_iec_sim_over_tcp_prints_a_configuration_that_keeps_its_schedule(tmp_path: Path) -> None:
    config_file = tmp_path / "sim.toml"
    process, url = sim_process("iec62056-21", "--transport", "tcp", "--meters", "4", "--config-out", str(config_file))
    try:
        checked = subprocess.run(
            [sys.executable, "-m", "amr", "check-config", "-c", str(config_file)],
            capture_output=True, text=True, timeout=30,
        )
        assert checked.returncode == 0 and "warning" not in checked.stderr, checked.stderr
        config = config_from_dict(tomllib.loads(config_file.read_text(encoding="utf-8")), environ={})
        (bus,) = config.buses
        assert (bus.url, bus.settings.baudrate, bus.settings.baud_switch) == (url, 9600, False)  # type: ignore[attr-defined]

        async def sweep() -> tuple[list[int], float]:
            driver = poll_driver(bus)
            await driver.open()
            started = time.monotonic()
            try:
                results = [await driver.read(meter) for meter in config.meters]
            finally:
                await driver.close()
            return [int(str(r.raw["baudrate"])) for r in results], time.monotonic() - started

        speeds, seconds = asyncio.run(asyncio.wait_for(sweep(), 30))
        assert speeds == [9600] * 4
        assert seconds < 30 / 4  # the printed schedule is 30 s
    finally:
        stop(process)


def test_check_config_warns_when_a_bus_cannot_keep_its_schedule(tmp_path: Path) -> None:
    """The configuration `amr sim` used to print: IEC at 300 baud behind a converter, 4 meters every 30 s."""
    meters = "".join(f'[[meters]]\nserial = "S{i}"\nbus = "iec"\naddress = {i}\ntariffs = 2\n\n' for i in range(1, 5))
    config_file = tmp_path / "slow.toml"
    config_file.write_text(
        '[[buses]]\nname = "iec"\nkind = "iec62056-21"\nurl = "socket://127.0.0.1:4001"\nbaudrate = 300\n'
        'bytesize = 7\nparity = "E"\ntimeout = "1s"\nschedule = "30s"\n\n' + meters,
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "amr", "check-config", "-c", str(config_file)]
    checked = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0
    assert "bus 'iec': one sweep of 4 meter(s) takes about" in checked.stderr
    assert "at 300 baud, handshake included), longer than its schedule's 30s" in checked.stderr
    assert "baudrate = 9600 and baud_switch = false" in checked.stderr
