"""``amr users`` (password from standard input, never printed), and the poll counters of ``amr run``."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from amr.api.command import _count_polls, add_parsers
from amr.api.security import Passwords
from amr.app import App
from amr.store.users import Users


def _run(argv: list[str], stdin: str = "") -> int:
    parser = argparse.ArgumentParser(prog="amr")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "amr.toml"
    path.write_text(
        'database = { url = "sqlite:///amr.sqlite" }\n'
        '[[meters]]\nserial = "M1"\naccounts = ["A1"]\n',
        encoding="utf-8",
    )
    return path


def test_users_commands(config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    assert _run(["users", "add", "ivan", "--role", "askue", "-c", str(config)]) == 0
    assert _run(["users", "link", "ivan", "--account", "A1", "--meter", "M1", "-c", str(config)]) == 0
    assert _run(["users", "add", "portal", "--role", "cabinet", "--no-password", "--api-key", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pass" not in out
    key = out.split("keep it secret): ")[1].split()[0]
    assert key.startswith("amrk_")
    assert _run(["users", "disable", "ivan", "-c", str(config)]) == 0
    assert capsys.readouterr().out == "user ivan disabled\n"
    assert _run(["users", "list", "--json", "-c", str(config)]) == 0
    listed = {u["login"]: u for u in json.loads(capsys.readouterr().out)}
    assert listed["ivan"]["disabled"] is True and listed["ivan"]["accounts"] == ["A1"]
    assert listed["portal"]["api_keys"] == 1 and listed["portal"]["password"] is False
    monkeypatch.setattr("sys.stdin", io.StringIO("new-pass\n"))
    assert _run(["users", "passwd", "ivan", "-c", str(config)]) == 0
    with App.open(config) as app:
        user = Users(app.store).get("ivan")
        assert Passwords().verify(user.password_hash, "new-pass")
        assert user.password_hash is not None and "new-pass" not in user.password_hash
    assert _run(["users", "key", "portal", "--revoke", "-c", str(config)]) == 0
    assert "1 key(s) of portal revoked" in capsys.readouterr().out


def test_poll_counters_in_the_shared_registry() -> None:
    registry = CollectorRegistry()
    collector = SimpleNamespace(on_poll=[])
    _count_polls(collector, registry)
    [hook] = collector.on_poll
    hook(SimpleNamespace(skipped=False, ok=True, bus="rs485-1", error_kind=None, seconds=0.07))
    hook(SimpleNamespace(skipped=False, ok=False, bus="rs485-1", error_kind="ReadTimeout", seconds=1.0))
    text = generate_latest(registry).decode()
    assert 'amr_collector_polls_total{bus="rs485-1",result="ok"} 1.0' in text
    assert 'amr_collector_poll_errors_total{kind="ReadTimeout"} 1.0' in text
