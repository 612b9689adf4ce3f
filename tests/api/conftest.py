"""An API over a store on SQLite and on the real PostgreSQL, with users of every role."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from amr.api import create_app
from amr.api.context import ApiContext
from amr.api.security import Passwords, digest, new_api_key
from amr.app import App
from amr.config import DatabaseConfig, config_from_dict
from amr.core.domain import Channel, IncomingReading, Source, wh_from_kwh
from amr.ingest.ingestor import Ingestor
from amr.store import Store
from tests.conftest import _clean

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
PASSWORD = "correct horse"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

METERS: list[dict[str, Any]] = [
    {"serial": "M1", "name": "кв. 1", "object": "Дом 1", "point": "dom1-kv1", "accounts": ["A1"], "tariffs": 2,
     "max_power_kw": 15},
    {"serial": "M2", "name": "кв. 2", "object": "Дом 1", "point": "dom1-kv2", "accounts": ["A2"], "max_power_kw": 15},
    {"serial": "M3", "name": "Ввод Т-1", "object": "ПС Северная", "point": "north-t1", "accounts": ["B1"],
     "max_power_kw": 1000},
]
EXPORT = {"sender_inn": "7701234567", "sender_name": "АО «Сбыт»", "area_inn": "7709876543", "area_name": "РЭС Северный"}


class Clock:
    """A clock tests can move."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        self.now += delta


@dataclass
class Env:
    """The API under test with helpers."""

    client: TestClient
    ctx: ApiContext
    clock: Clock
    backend: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> App:
        """The wired application."""
        return self.ctx.app

    def user(self, login: str, role: str, *, key: bool = False, **links: list[str]) -> None:
        """Add a user with links; log it in (token headers kept in `headers`)."""
        users = self.ctx.users
        users.add(login, role, self.ctx.passwords.hash(PASSWORD), self.clock.now, login.title())
        for kind, values in links.items():
            users.link(login, kind, values)
        answer = self.client.post("/api/v1/auth/token", json={"login": login, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        self.headers[login] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        if key:
            secret = new_api_key()
            users.add_api_key(login, digest(secret), secret[:12], self.clock.now)
            self.api_keys[login] = secret

    def h(self, login: str, lang: str | None = None) -> dict[str, str]:
        """The auth headers of a user (and Accept-Language)."""
        headers = dict(self.headers[login])
        if lang:
            headers["Accept-Language"] = lang
        return headers

    def put(self, serial: str, at: datetime, a_plus: str, *, tariff: int = 0, source: Source = Source.MODBUS,
            **channels: str) -> None:
        """Store a reading through the ingestor (as the collector would)."""
        values = {Channel.A_PLUS: wh_from_kwh(a_plus)}
        values.update({Channel(k): wh_from_kwh(v) for k, v in channels.items()})
        reading = IncomingReading(serial, at, tariff, values, source, {"test": True}, received_at=at)
        result = self.app.ingestor.submit([reading])
        assert result.outcomes[0].status == "accepted", result.outcomes[0]

    def profile(self, serial: str, start: datetime, count: int, step_kwh: str = "0.5", first: str = "100",
                **channels: str) -> None:
        """Half-hour readings of tariff 0 from `start`, rising by `step_kwh` each (other channels by theirs)."""
        batch = []
        for i in range(count):
            at = start + timedelta(minutes=30 * i)
            values = {Channel.A_PLUS: wh_from_kwh(first) + i * wh_from_kwh(step_kwh)}
            for name, step in channels.items():
                values[Channel(name)] = i * wh_from_kwh(step)
            batch.append(IncomingReading(serial, at, 0, values, Source.MODBUS, {}, received_at=at))
        result = self.app.ingestor.submit(batch)
        assert all(o.status == "accepted" for o in result.outcomes)


def _config(url: str, api: dict[str, Any] | None = None) -> Any:
    return config_from_dict(
        {
            "database": {"url": url},
            "site": {"timezone": "Europe/Moscow", "name": "РЭС"},
            "api": {"trusted_proxies": ["testclient"], **(api or {})},
            "export": EXPORT,
            "meters": METERS,
        },
        environ={},
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating costs more than copying)."""
    path = tmp_path_factory.mktemp("template") / "amr.sqlite"
    Store.open(DatabaseConfig(url=f"sqlite:///{path}"), "Europe/Moscow").close()
    return path


def make_env(store: Store, url: str, backend: str, api: dict[str, Any] | None = None) -> Iterator[Env]:
    """An Env over an empty, migrated store."""
    config = _config(url, api)
    clock = Clock(NOW)
    meters = store.sync_meters(config.meter_objects())
    ingestor = Ingestor(store, meters, config.site.clock_tolerance, clock, config.site.tz)
    app = App(config, store, {m.serial: m for m in meters}, ingestor)
    api_app = create_app(app, passwords=Passwords(FAST_HASHER))
    with TestClient(api_app) as client:
        yield Env(client, api_app.state.amr, clock, backend)


def store_for(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> tuple[Store, str]:
    """A clean store of the requested backend and its URL."""
    if request.param == "sqlite":
        path = tmp_path / "amr.sqlite"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
        return Store.open(DatabaseConfig(url=url), "Europe/Moscow"), url
    store: Store = request.getfixturevalue("postgres_store")
    _clean(store)
    return store, str(store.engine.url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Env]:
    """The API with users: ivan (askue, A1), petr (askue, A2), cab (cabinet, A1, API key),
    disp (dispatcher, all), north (dispatcher, object ПС Северная), root (admin)."""
    store, url = store_for(request, tmp_path, sqlite_template)
    try:
        for found in make_env(store, url, request.param):
            found.user("ivan", "askue", account=["A1"])
            found.user("petr", "askue", account=["A2"])
            found.user("cab", "cabinet", key=True, account=["A1"])
            found.user("disp", "dispatcher")
            found.user("north", "dispatcher", object=["ПС Северная"])
            found.user("root", "admin")
            yield found
    finally:
        if request.param == "sqlite":
            store.close()


def moderated(env: Env, sources: list[str]) -> None:
    """Switch on moderation of `sources` for this Env."""
    config = env.app.config
    api = config.api.model_copy(update={"moderated_sources": sources})
    env.app.config = config.model_copy(update={"api": api})


def with_api(env: Env, **values: Any) -> None:
    """Change ``[api]`` settings of this Env."""
    config = env.app.config
    env.app.config = config.model_copy(update={"api": config.api.model_copy(update=values)})


__all__ = ["NOW", "PASSWORD", "Clock", "Env", "make_env", "moderated", "with_api"]
