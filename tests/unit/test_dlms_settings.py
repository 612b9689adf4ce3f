"""DLMS settings through the configuration loader: the README's example, refused keys, the merged link."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from amr.config import config_from_dict
from amr.drivers.dlms.driver import DlmsHdlcDriver, DlmsTcpDriver
from amr.drivers.dlms.settings import DlmsHdlcBusSettings, DlmsMeterSettings
from amr.errors import ConfigError

README = Path(__file__).parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("### DLMS/COSEM (СПОДЭС)", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_amr_check_config_accepts_the_readmes_dlms_example(tmp_path: Path) -> None:
    path = tmp_path / "dlms.toml"
    path.write_text(readme_example(), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "amr", "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "OK — 1 meter(s)" in done.stdout


def test_the_readmes_example_gives_the_driver_its_settings() -> None:
    config = config_from_dict(tomllib.loads(readme_example()), {})
    bus, meter = config.buses[0], config.meters[0]
    assert isinstance(bus.settings, DlmsHdlcBusSettings) and bus.settings.dlms.client == 32
    link = DlmsHdlcDriver(bus).link_of(meter)
    assert link.security.authentication == "lls" and link.security.client == 32
    assert link.security.password is not None and link.security.password.get_secret_value() == "12345678"
    assert link.meter.physical_address == 145 and link.address_size == 4
    assert link.obis("a_minus", "") == "1.0.2.8.0.255"
    shown = repr(link) + repr(meter) + repr(bus)
    assert "12345678" not in shown.replace("012345678", "")  # the serial holds the password's digits


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, {})
    return str(caught.value)


def test_a_wrong_key_is_refused_naming_the_kinds_keys() -> None:
    text = refusal({
        "buses": [{"name": "b", "kind": "dlms-tcp", "url": "tcp://127.0.0.1:4059", "clinet": 32,
                   "dlms": {"autentication": "lls"}}],
        "meters": [{"serial": "1", "bus": "b", "pasword": "secret-1", "dlms": {"obis": {"a_plux": "1.0.1.8.0.255"}}}],
    })
    assert "buses[0].clinet: unknown key; a dlms-tcp bus takes name, kind, url" in text
    assert "concurrency, dlms" in text
    assert "buses[0].dlms: unknown key autentication; the table takes client, authentication, password" in text
    assert "meters[0].pasword: unknown key; a meter on a dlms-tcp bus takes" in text and "password, dlms" in text
    assert "meters[0].dlms.obis: obis key 'a_plux' is not one of a_plus" in text
    assert "secret-1" not in text


def test_a_dlms_hdlc_bus_is_never_the_wrapper_and_lls_needs_a_password() -> None:
    text = refusal({"buses": [{"name": "b", "kind": "dlms-hdlc", "url": "/dev/ttyUSB0",
                               "dlms": {"transport": "wrapper"}}]})
    assert 'the TCP wrapper is kind = "dlms-tcp"' in text
    config = config_from_dict({
        "buses": [{"name": "b", "kind": "dlms-tcp", "url": "tcp://127.0.0.1:4059",
                   "dlms": {"client": 32, "authentication": "lls"}}],
        "meters": [{"serial": "1", "bus": "b", "address": 17}],
    }, {})
    with pytest.raises(ConfigError, match=r'meter 1: dlms: .*authentication = "lls" needs a password'):
        DlmsTcpDriver(config.buses[0]).link_of(config.meters[0])


def test_a_meters_table_overrides_the_bus_and_its_flat_password() -> None:
    config = config_from_dict({
        "buses": [{"name": "b", "kind": "dlms-tcp", "url": "tcp://127.0.0.1:4059", "concurrency": 50,
                   "dlms": {"client": 32, "authentication": "lls", "password": "bus-pass"}}],
        "meters": [{"serial": "1", "bus": "b", "address": 17, "password": "flat-pass"},
                   {"serial": "2", "bus": "b", "address": 18, "password": "flat-pass",
                    "dlms": {"password": "own-pass"}},
                   {"serial": "3", "bus": "b", "address": 19}],
    }, {})
    driver = DlmsTcpDriver(config.buses[0])
    passwords = [driver.link_of(m).security.password for m in config.meters]
    assert [p.get_secret_value() if p else None for p in passwords] == ["flat-pass", "own-pass", "bus-pass"]
    assert config.buses[0].settings.reads_at_once == 50
    assert isinstance(config.meters[1].settings, DlmsMeterSettings)
