"""Property-based checks of every operation against the OpenAPI schema (schemathesis): no 5xx,
documented status codes and content types, bodies that match the schemas, and bad input refused
with 4xx, and a valid one never refused for its form (a 422 whose code is a format error: the
schema's patterns, formats and bounds must say all the API demands of a value's form). Valid and
invalid requests, 50 examples per operation, on SQLite and on PostgreSQL (which alone refuses NUL in
text and integers beyond 64 bits); then every field of a valid request is
swept through boundary values (NUL, the ends of the calendar, huge and foreign-script numbers),
which random generation reaches only by luck.

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
    CheckContext,
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
from tests.conftest import _clean

EXAMPLES = 50
BOUNDARY = [
    "M\x001",
    "\x00",
    "0001-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59-05:00",
    "0001-01",
    "9223372036854776",
    "1e400",
    "99999",
    "١٢٣",
    "１２３",
    "1_000",
    "",
]

FORMAT_CODES = {"invalid_input", "malformed"}
"""Codes of a refusal the schema could have said (a field's form, pattern, range or length); a
schema-valid request never earns one. Refusals for reasons outside the schema have codes of their
own (not_found, a VEE reason such as lower_than_previous, invalid_period, ...)."""


def schema_valid_is_not_malformed(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """A request valid per the schema is not refused for its form: no 422 with a format code."""
    if case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE and response.status_code == 422:
        code = response.json().get("code")
        assert code not in FORMAT_CODES, f"a schema-valid request was refused as {code}: {response.text}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    schema_valid_is_not_malformed,
]


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the schema of an app that is never called."""
    unopened = App(config_from_dict({}, environ={}), None, {}, None)  # type: ignore[arg-type]
    paths = create_app(unopened).openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() for method in operations]


OPERATIONS = _operations()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Env]:
    """One API with data in every table, shared by all operations of this module, per backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("schema") / "amr.sqlite"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
        store = Store.open(DatabaseConfig(url=url), "Europe/Moscow")
    else:
        store = request.getfixturevalue("postgres_store")
        _clean(store)
        url = str(store.engine.url)
    try:
        for env in make_env(store, url, request.param):
            env.user("root", "admin")
            env.profile("M1", NOW - timedelta(days=2), 96, step_kwh="0.25", r_plus="0.1")
            env.put("M2", NOW - timedelta(days=1), "100")
            env.client.post("/api/v1/readings", json={"meter": "M2", "values": {"0": "50"}}, headers=env.h("root"))
            yield env
    finally:
        if request.param == "sqlite":
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
        ("GET", "/api/v1/meters/{serial}/intervals"),
        ("PUT", "/api/v1/dispatch/meters/{serial}/intervals"),
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
        ("POST", "/api/v1/dispatch/meters/{serial}/relay"),
        ("GET", "/api/v1/dispatch/meters/{serial}/relay"),
        ("GET", "/api/v1/dispatch/relay-commands/{command_id}"),
        ("GET", "/api/v1/meters/{serial}/quality"),
        ("GET", "/api/v1/meters/{serial}/events"),
        ("GET", "/api/v1/dispatch/clock"),
        ("POST", "/api/v1/dispatch/meters/{serial}/clock"),
    }
    assert named <= set(OPERATIONS), named - set(OPERATIONS)
    assert len(OPERATIONS) == 57


def test_every_error_answer_is_documented_as_the_error_body() -> None:
    unopened = App(config_from_dict({}, environ={}), None, {}, None)  # type: ignore[arg-type]
    document = create_app(unopened).openapi()
    components = document["components"]["schemas"]
    assert components["ErrorBody"]["required"] == ["code", "message"]
    refs = {
        answer["content"]["application/json"]["schema"]["$ref"]
        for item in document["paths"].values()
        for operation in item.values()
        for status, answer in operation["responses"].items()
        if status.startswith(("4", "5")) and status != "422"
    }
    assert refs == {"#/components/schemas/ErrorBody"}
    nested = {"FieldProblem", "TariffVerdict"}
    assert nested <= components.keys()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_schema(method: str, path: str, api_schema: Any, seeded: Env) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    headers = seeded.h("root")

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


KNOWN = {"serial": "M2", "account": "A2", "meter": "M2"}
"""Values that find something, so that a swept field is the only thing wrong with a request."""


def _swept(case: Any, raw: dict[str, Any]) -> Iterator[Any]:
    """`case` made valid, then with, in turn, one declared path or query parameter or body field set
    to one boundary value (restored after)."""
    places: list[tuple[str, tuple[str, ...]]] = []
    for parameter in raw.get("parameters", []):
        part = {"path": "path_parameters", "query": "query"}.get(parameter["in"])
        if part is None:
            continue
        if getattr(case, part) is None:
            setattr(case, part, {})
        name = parameter["name"]
        if name in KNOWN:
            getattr(case, part)[name] = KNOWN[name]
        places.append((part, (name,)))
    if isinstance(case.body, dict):
        case.body.update({k: v for k, v in KNOWN.items() if k in case.body})
        if "values" in case.body:
            case.body["values"] = {"0": "150"}
        for name, value in case.body.items():
            places.append(("body", (name,)))
            if isinstance(value, dict):
                places += [("body", (name, key)) for key in value]
    for part, keys in places:
        target = getattr(case, part)
        for key in keys[:-1]:
            target = target[key]
        absent = keys[-1] not in target
        original = target.get(keys[-1])
        for value in BOUNDARY:
            target[keys[-1]] = value
            yield case
        if absent:
            del target[keys[-1]]
        else:
            target[keys[-1]] = original


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_boundary_values_never_answer_5xx(method: str, path: str, api_schema: Any, seeded: Env) -> None:
    operation = api_schema[path][method]
    headers = seeded.h("root")

    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    @settings(max_examples=1, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        for changed in _swept(case, operation.definition.raw):
            changed.call_and_validate(headers=headers, checks=[not_a_server_error])

    check()

