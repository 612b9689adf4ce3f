"""Configuration: validation at load, errors naming file, key and fix, environment overrides."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from amr.config import load_config
from amr.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "config" / "example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "amr.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_loads() -> None:
    config = load_config(EXAMPLE, environ={})
    assert len(config.meters) == 4
    assert config.site.timezone == "Europe/Moscow"
    assert config.database.url.startswith("sqlite:////")  # made absolute, next to the file


def test_errors_name_file_key_and_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[site]\ntimezone = "Mars/Olympus"\n\n[[meters]]\nserial = "1"\nct_ratio = -5\ntarif = 2\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert f"{path}: site.timezone: unknown time zone 'Mars/Olympus'; use an IANA name" in message
    assert "meters[0].ct_ratio" in message and "positive" in message
    assert "meters[0].tarif: unknown key" in message


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(tmp_path, "[site\n"), environ={})
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", environ={})


def test_duplicate_serials_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[[meters]]\nserial = "7"\n[[meters]]\nserial = "7"\n')
    with pytest.raises(ConfigError, match=r"meters\[1\].serial '7' appears twice"):
        load_config(path, environ={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///a.sqlite"\n')
    config = load_config(
        path, environ={"AMR_DATABASE_URL": "postgresql://u@127.0.0.1/x", "AMR_SITE_TIMEZONE": "Europe/Volgograd"}
    )
    assert config.database.url == "postgresql://u@127.0.0.1/x"
    assert config.site.timezone == "Europe/Volgograd"


def test_versioned_ratios_and_dates_in_the_site_zone(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[meters]]\nserial = "1"\nct_ratio = [{ ratio = 40 }, { since = 2026-03-01, ratio = 80 }]\n'
        "vt_ratio = 100\ninstalled = 2025-01-01\nclock = 1\n".replace("clock = 1\n", ""),
    )
    [meter] = load_config(path, environ={}).meter_objects()
    assert [v.ct for v in meter.ratios] == [Fraction(40), Fraction(80)]
    assert meter.ratios[1].since is not None and meter.ratios[1].since.hour == 21  # midnight Moscow
    assert meter.installed is not None and meter.installed.isoformat() == "2024-12-31T21:00:00+00:00"


FIELD = """
[[buses]]
name = "line1"
kind = "modbus-rtu"
url = "socket://127.0.0.1:4001"
timeout = "500ms"
schedule = "30s"

[[meters]]
serial = "A"
bus = "line1"
address = 1
profile = "eastron-sdm630"
"""


def test_field_settings_parse_durations_and_schedules(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FIELD), environ={})
    bus = config.bus("line1")
    assert bus.timeout == timedelta(milliseconds=500)
    assert bus.schedule is not None and bus.schedule.every == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('\n[[meters]]\nserial = "B"\nbus = "line2"\naddress = 2\nprofile = "eastron-sdm630"\n', "unknown bus 'line2'"),
        ('\n[[meters]]\nserial = "B"\nbus = "line1"\naddress = 1\nprofile = "eastron-sdm630"\n', "already meter A"),
        (
            '\n[[meters]]\nserial = "B"\nbus = "line1"\naddress = 2\nprofile = "acme-9000"\n',
            "unknown profile 'acme-9000'",
        ),
        (
            '\n[[meters]]\nserial = "B"\nbus = "line1"\naddress = 2\n'
            'registers = [{ channel = "a_plus", address = 0, type = "uint32", count = 1 }]\n',
            "spans 2 register(s), not count = 1",
        ),
        (
            '\n[[meters]]\nserial = "B"\nbus = "line1"\naddress = 2\nprofile = "eastron-sdm630"\nschedule = "400ms"\n',
            "not shorter than the poll interval",
        ),
        (  # a bus without a schedule: its meters are polled on the collector's default
            '\n[collector]\ndefault_schedule = "1s"\n\n[[buses]]\nname = "line2"\nkind = "modbus-tcp"\n'
            'url = "tcp://127.0.0.1:1502"\ntimeout = "2s"\n\n'
            '[[meters]]\nserial = "B"\nbus = "line2"\naddress = 1\nprofile = "eastron-sdm630"\n',
            "meters[1] (B): timeout 2s is not shorter than the poll interval 1s",
        ),
        (
            '\n[[meters]]\nserial = "B"\nbus = "line1"\naddress = 2\nprofile = "eastron-sdm630"\n'
            'schedule = { every = "1m", jitter = "1m" }\n',
            "jitter 1m must be shorter than the poll interval 1m",
        ),
    ],
)
def test_field_settings_are_cross_checked(tmp_path: Path, extra: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, FIELD + extra), environ={})
    assert fragment in str(caught.value)


def test_every_error_of_a_file_comes_in_one_run_with_its_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[buses]]\nname = "rtu"\nkind = "modbus-rtu"\nurl = "rfc2217://127.0.0.1:4000"\n\n'
        '[[buses]]\nname = "m"\nkind = "mercury230"\nurl = "socket://127.0.0.1:4001"\ntimeout = "50s"\n'
        'schedule = "40s"\n\n'
        '[[meters]]\nserial = "1"\nbus = "nosuch"\nct_ratio = "abc"\n\n'
        '[[meters]]\nserial = "2"\nbus = "m"\naddress = 3\ntariffs = "two"\n\n'
        '[[meters]]\nserial = "3"\nbus = "m"\naddress = 4\n\n'
        '[[meters]]\nserial = "4"\nbus = "gone"\naddress = 5\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "(top level)" not in str(caught.value)
    text = "\n".join(line.removeprefix(f"{path}: ") for line in lines)
    assert "buses[0].url: a modbus-rtu bus cannot poll through rfc2217://" in text
    assert "use socket://host:port" in text
    assert "meters[0].ct_ratio: Input should be a valid decimal; got 'abc'; write e.g. 40" in text
    assert "meters[1].tariffs: Input should be a valid integer" in text and "got 'two'; write e.g. 3" in text
    assert "meters[2] (3): timeout 50s is not shorter than the poll interval 40s" in text
    assert "meters[3] (4).bus: unknown bus 'gone'" in text
    assert "meters[0].bus: unknown bus 'nosuch'" in text
    assert len(lines) == 6
