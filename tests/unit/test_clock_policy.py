"""The clock policy: ``[clock]`` with bus and meter overrides, what `plan` does with a drift, and ``[events]``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from amr.config import config_from_dict, load_config
from amr.drivers.clock import ClockLimits
from amr.errors import ConfigError
from amr.operations.clock import plan
from amr.operations.settings import ClockPolicy

MERCURY = ClockLimits(max_shift=timedelta(minutes=4), once_a_day=True, set_needs="the admin (level 2) password")
IEC = ClockLimits(max_shift=None)
S = timedelta(seconds=1)


def test_meter_over_bus_over_site() -> None:
    config = config_from_dict(
        {
            "buses": [{"name": "l1", "kind": "mercury230", "url": "/dev/ttyUSB0"}],
            "meters": [{"serial": "A", "bus": "l1", "address": 1}, {"serial": "B", "bus": "l1", "address": 2}],
            "clock": {"threshold": "5s", "buses": {"l1": {"threshold": "30s", "correct": False}},
                      "meters": {"B": {"correct": True, "allow_set": True}}},
        },
        environ={},
    )
    a, b = config.clock.policy("A", "l1"), config.clock.policy("B", "l1")
    assert (a.threshold, a.correct, a.allow_set) == (30 * S, False, False)
    assert (b.threshold, b.correct, b.allow_set) == (30 * S, True, True)
    assert config.clock.policy("C", None).threshold == 5 * S
    assert config.events.read_every is None and not config.events.alarm.enabled


def test_plan_by_drift_policy_and_protocol() -> None:
    policy = ClockPolicy(threshold=10 * S)
    assert plan(8 * S, policy, MERCURY).action == "none"
    assert plan(-90 * S, policy, MERCURY).action == "shift"
    assert plan(90 * S, policy, MERCURY, corrected_today=True).action == "drifting"
    far = plan(10 * 60 * S, policy, MERCURY)
    assert far.action == "uncorrectable" and "allow_set = true (the admin (level 2) password)" in far.why
    assert plan(10 * 60 * S, ClockPolicy(threshold=10 * S, allow_set=True), MERCURY).action == "set"
    assert plan(10 * 60 * S, policy, IEC).action == "shift"  # IEC writes the clock outright
    assert plan(90 * S, ClockPolicy(correct=False), MERCURY).action == "drifting"
    assert plan(90 * S, ClockPolicy(correct=False), MERCURY, force=True).action == "shift"
    assert plan(90 * S, policy, None).action == "uncorrectable"  # a driver that cannot write the clock


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('[clock.buses.nosuch]\nthreshold = "5s"', "clock.buses.nosuch: no bus named 'nosuch'"),
        ("[clock.meters.X9]\nallow_set = true", "clock.meters.X9: no meter with serial 'X9'"),
        ('[clock]\nthreshold = "0s"', "clock.threshold: the threshold must be more than 0 s"),
        ('[events.alarm]\nmqtt = "127.0.0.1:1883"', "events.alarm.mqtt: write mqtt://host:port/topic"),
        ('[events.alarm]\nwebhook = "ftp://x"', "events.alarm.webhook: write an http:// or https://"),
    ],
)
def test_clock_and_event_keys_are_checked(tmp_path: Path, extra: str, fragment: str) -> None:
    path = tmp_path / "amr.toml"
    path.write_text(f'[[meters]]\nserial = "A1"\n\n{extra}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert fragment in str(caught.value)
