"""Property-based checks of every operation against the OpenAPI schema (schemathesis): no 5xx,
documented status codes and content types, bodies that match the schemas, and bad input refused
with 4xx. Valid and invalid requests, a few examples per operation, on SQLite.

(schemathesis' own pytest plugin does not run under pytest 9, so each operation is a
parametrized test that drives the operation's Hypothesis strategy itself.)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from amr.api import create_app
from amr.app import App
from amr.config import DatabaseConfig, config_from_dict
from amr.store import Store
from tests.api.conftest import NOW, Env, make_env

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the schema of an app that is never called."""
    unopened = App(config_from_dict({}, environ={}), None, {}, None)  # type: ignore[arg-type]
    paths = create_app(unopened).openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() for method in operations]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Env]:
    """One API with data in every table, shared by all operations of this module."""
    path = tmp_path_factory.mktemp("schema") / "amr.sqlite"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    store = Store.open(DatabaseConfig(url=url), "Europe/Moscow")
    try:
        for env in make_env(store, url, "sqlite"):
            env.user("root", "admin")
            env.profile("M1", NOW - timedelta(days=2), 96, step_kwh="0.25", r_plus="0.1")
            env.put("M2", NOW - timedelta(days=1), "100")
            env.client.post("/api/v1/readings", json={"meter": "M2", "values": {"0": "50"}}, headers=env.h("root"))
            yield env
    finally:
        store.close()


@pytest.fixture(scope="module")
def api_schema(seeded: Env) -> Any:
    """The OpenAPI schema of the seeded app, called in-process."""
    return schemathesis.openapi.from_asgi("/openapi.json", seeded.client.app)


def test_every_route_is_covered() -> None:
    """Every operation of the schema is exercised below; the routes the issue names are among them."""
    named = {
        ("POST", "/api/v1/auth/token"),
        ("GET", "/api/v1/askue/meters"),
        ("GET", "/api/v1/accounts/{account}/meters"),
        ("GET", "/api/v1/meters/{serial}/readings"),
        ("GET", "/api/v1/meters/{serial}/consumption"),
        ("POST", "/api/v1/readings/preview"),
        ("POST", "/api/v1/readings"),
        ("DELETE", "/api/v1/readings/{reading_id}"),
        ("POST", "/api/v1/public/readings"),
        ("GET", "/api/v1/dispatch/meters"),
        ("GET", "/api/v1/dispatch/rejected"),
        ("POST", "/api/v1/dispatch/rejected/{rejected_id}/accept"),
        ("POST", "/api/v1/dispatch/meters/{serial}/poll"),
        ("GET", "/api/v1/export/readings.csv"),
        ("GET", "/api/v1/export/80020"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
    }
    assert named <= set(OPERATIONS), named - set(OPERATIONS)
    assert len(OPERATIONS) == 30


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_schema(method: str, path: str, api_schema: Any, seeded: Env) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )
    headers = seeded.h("root")

    @given(case=cases)
    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
