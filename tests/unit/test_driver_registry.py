"""The protocol registry: every protocol is complete, and the rest of the service reads from it."""

from __future__ import annotations

import argparse

import pytest

from amr.config import BusConfig, config_from_dict
from amr.core.domain import Source
from amr.drivers import poll_driver, push_driver
from amr.drivers.base import PollDriver, PushDriver
from amr.drivers.registry import KINDS, PROTOCOLS
from amr.drivers.spec import CAPABILITIES, SimulatorHook
from amr.errors import ConfigError

URLS = {"modbus-tcp": "tcp://127.0.0.1:502", "mqtt": "mqtt://127.0.0.1:1883", "dlms-tcp": "tcp://127.0.0.1:4059"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_protocol_has_labels_source_capabilities_driver_and_simulator(kind: str) -> None:
    spec = PROTOCOLS[kind]
    assert spec.kind == kind
    assert spec.labels["ru"] and spec.labels["en"]
    assert spec.source in Source and spec.source.value.startswith("askue:")
    assert "registers" in spec.capabilities and spec.capabilities <= set(CAPABILITIES)
    assert spec.url_schemes
    driver = spec.driver_class()
    assert issubclass(driver, PushDriver if spec.push else PollDriver)
    if not spec.push:
        assert driver.serial_line is spec.serial_line and driver.source == spec.source.value
    hook = spec.simulator_hook()
    assert isinstance(hook, SimulatorHook)
    parser = argparse.ArgumentParser()
    hook.add_options(parser.add_argument_group(kind))  # its options do not clash with another's


def test_every_askue_source_is_written_by_a_protocol() -> None:
    written = {spec.source for spec in PROTOCOLS.values()}
    assert written == {s for s in Source if s.value.startswith("askue:")}


@pytest.mark.parametrize("kind", KINDS)
def test_the_registry_makes_each_driver(kind: str) -> None:
    fields = {"topics": ["a/+/b"]} if kind == "mqtt" else {}
    bus = BusConfig.model_validate({"name": "b", "kind": kind, "url": URLS.get(kind, "/dev/null"), **fields})
    driver = push_driver(bus, []) if PROTOCOLS[kind].push else poll_driver(bus)
    assert driver.bus is bus if isinstance(driver, PollDriver) else True
    with pytest.raises(ConfigError, match="is not a"):
        (poll_driver(bus) if PROTOCOLS[kind].push else push_driver(bus, []))


def test_an_unknown_kind_names_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"buses": [{"name": "b", "kind": "dlms", "url": "/dev/ttyUSB0"}]}, {})
    assert "buses[0].kind" in str(caught.value)
    for kind in KINDS:
        assert kind in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_a_url_of_another_form_is_refused_by_the_kinds_own_check(kind: str) -> None:
    wrong = "/dev/ttyUSB0" if PROTOCOLS[kind].url_schemes[0] else "mqtt://127.0.0.1:1883"
    fields = {"topics": ["a/+/b"]} if kind == "mqtt" else {}
    with pytest.raises(ConfigError, match=r"buses\[0\]\.url"):
        config_from_dict({"buses": [{"name": "b", "kind": kind, "url": wrong, **fields}]}, {})
