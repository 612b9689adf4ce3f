"""Start-up of the `amr` command: what it imports, how many statements the meter sync takes, and
two processes starting together on an empty PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

from amr.config import DatabaseConfig, config_from_dict
from amr.core.meters import Meter
from amr.store import Store
from tests.conftest import POSTGRES_URL, _clean


def meter_specs(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "serial": f"S{i:06d}",
            "name": f"meter {i}",
            "object": f"house {i // 40}",
            "point": f"P{i:06d}",
            "accounts": [f"A{i}"],
            "ct_ratio": 40 if i % 2 else 1,
            **extra,
        }
        for i in range(count)
    ]


def meter_objects(specs: list[dict[str, Any]]) -> list[Meter]:
    return config_from_dict({"site": {"timezone": "Europe/Moscow"}, "meters": specs}, environ={}).meter_objects()


def toml(specs: list[dict[str, Any]]) -> str:
    lines = ['[site]\ntimezone = "Europe/Moscow"\n']
    for spec in specs:
        lines.append("[[meters]]\n")
        for key, value in spec.items():
            rendered = f'"{value}"' if isinstance(value, str) else repr(value).replace("'", '"')
            lines.append(f"{key} = {rendered}\n")
    return "".join(lines)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        shared: Store = request.getfixturevalue("postgres_store")
        _clean(shared)
        yield shared
        return
    opened = Store.open(DatabaseConfig(url=f"sqlite:///{tmp_path / 'amr.sqlite'}"), "Europe/Moscow")
    yield opened
    opened.close()


def counted(store: Store) -> tuple[list[str], Any]:
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", note)
    return statements, note


def test_meter_sync_takes_a_few_statements_and_writes_nothing_when_nothing_changed(empty_store: Store) -> None:
    meters = meter_objects(meter_specs(2000))
    statements, note = counted(empty_store)
    try:
        first = empty_store.sync_meters(meters)
        assert len(statements) <= 30, statements  # not a query per meter
        statements.clear()
        again = empty_store.sync_meters(meters)
        assert [s for s in statements if s in ("INSERT", "UPDATE", "DELETE")] == []
    finally:
        event.remove(empty_store.engine, "before_cursor_execute", note)
    assert [m.id for m in first] == [m.id for m in again] and len({m.id for m in first}) == 2000
    assert first[5] == meters[5].with_id(first[5].id) and first[5].id != 0


def test_meter_sync_gives_ids_without_copying(empty_store: Store) -> None:
    meters = meter_objects(meter_specs(20))
    synced = empty_store.sync_meters(meters)
    assert all(s is m and s.id != 0 for s, m in zip(synced, meters, strict=True))
    assert synced[3].scale_at(datetime(2026, 1, 1, tzinfo=UTC)).ratio == 40
    held = meters[2].with_id(999_999)  # a meter holding another id keeps it: the synced one is a copy
    (resynced,) = empty_store.sync_meters([held])
    assert held.id == 999_999 and resynced is not held and resynced.id == synced[2].id
    assert resynced == synced[2]


def test_meter_sync_applies_what_changed(empty_store: Store) -> None:
    specs = meter_specs(50)
    before = {m.serial: m.id for m in empty_store.sync_meters(meter_objects(specs))}
    specs[3] = {**specs[3], "name": "renamed", "ct_ratio": 80, "accounts": ["B1", "B2"], "object": "elsewhere"}
    specs[4] = {**specs[4], "max_power_kw": 15, "accounts": []}
    after = empty_store.sync_meters(meter_objects(specs))
    assert {m.serial: m.id for m in after} == before
    with empty_store.engine.connect() as conn:
        name, power = conn.execute(
            text("SELECT name, max_power_kw FROM meters WHERE serial IN ('S000003', 'S000004') ORDER BY serial")
        ).all()
        ct = conn.execute(text("SELECT ct FROM meter_ratios WHERE meter_id = :i"), {"i": before["S000003"]}).all()
        accounts = conn.execute(
            text("SELECT meter_id, account FROM meter_accounts WHERE meter_id IN (:a, :b) ORDER BY account"),
            {"a": before["S000003"], "b": before["S000004"]},
        ).all()
        house = conn.execute(
            text(
                "SELECT o.name FROM metering_points p JOIN objects o ON o.id = p.object_id WHERE p.code = 'P000003'"
            )
        ).scalar_one()
    assert name[0] == "renamed" and power[1] is not None and float(power[1]) == 15
    assert [float(c) for (c,) in ct] == [80.0]
    assert accounts == [(before["S000003"], "B1"), (before["S000003"], "B2")]
    assert house == "elsewhere"


def test_the_schema_heads_read_from_the_files_are_alembics() -> None:
    from amr.store.migrate import _file_heads, head_revision

    heads = _file_heads()
    assert heads is not None and "+".join(sorted(heads)) == head_revision()


def test_a_command_of_the_store_does_not_load_the_servers(tmp_path: Path) -> None:
    config = tmp_path / "amr.toml"
    config.write_text(toml(meter_specs(3)), encoding="utf-8")
    probe = (
        "import sys\nfrom amr.cli import main\n"
        f"main(['check-config', '-c', {str(config)!r}])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'uvicorn', 'alembic', 'sqlalchemy', "
        "'pymodbus', 'paho', 'apscheduler'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_collect_starts_without_the_api(tmp_path: Path) -> None:
    config = tmp_path / "amr.toml"
    body = toml(meter_specs(3)).replace('[site]', f'[database]\nurl = "sqlite:///{tmp_path / "amr.sqlite"}"\n\n[site]')
    config.write_text(body, encoding="utf-8")
    probe = (
        "import sys\nfrom amr.cli import main\n"
        f"code = main(['collect', '--once', '-c', {str(config)!r}])\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'uvicorn', "
        "'simulators'}), 'amr.api' in sys.modules, 'amr.demo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert "no meter on a polled bus" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "1 [] False False"


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A database of its own on the real PostgreSQL, with no schema at all."""
    name = f"amr_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("schema", ["none", "migrated"])
@pytest.mark.parametrize("round_", range(2))
def test_two_imports_starting_together_on_an_empty_database(
    tmp_path: Path, empty_postgres: str, round_: int, schema: str
) -> None:
    specs = meter_specs(1500)
    config = tmp_path / "amr.toml"
    config.write_text(toml(specs), encoding="utf-8")
    data = tmp_path / "readings.csv"
    data.write_text(
        "meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus\n"
        + "".join(f"{s['serial']},2026-01-01T00:00:00+03:00,0,{i}.5,,,\n" for i, s in enumerate(specs[:20])),
        encoding="utf-8",
    )
    env = {**os.environ, "AMR_DATABASE_URL": empty_postgres}
    if schema == "migrated":  # the tables exist, no meter is in them yet
        subprocess.run([sys.executable, "-m", "amr", "db", "upgrade", "-c", str(config)], env=env, check=True)
    command = [sys.executable, "-m", "amr", "import", "-c", str(config), str(data), "--json"]
    pipe = subprocess.PIPE
    procs = [subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True, env=env) for _ in "ab"]
    results = [(p.wait(300), *p.communicate()) for p in procs]
    for code, _, err in results:
        assert code == 0 and "Traceback" not in err, err
    with psycopg.connect(empty_postgres) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM meters), (SELECT count(*) FROM objects), "
            "(SELECT count(*) FROM meter_ratios), (SELECT count(*) FROM readings)"
        ).fetchone()
    assert counts == (1500, 38, 1500, 20)


def _change_in_another_process(store: Store, sql: str) -> None:
    """Run `sql` from a process of its own, as another program editing the registry would."""
    url = store.engine.url
    if url.get_backend_name() == "postgresql":
        target = url.set(drivername="postgresql").render_as_string(hide_password=False)
        code = f"import psycopg\nwith psycopg.connect({target!r}) as c:\n    c.execute({sql!r})\n"
    else:
        code = f"import sqlite3\nc = sqlite3.connect({url.database!r})\nc.execute({sql!r})\nc.commit()\nc.close()\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_second_start_reads_only_the_ids_and_still_sees_changes(empty_store: Store) -> None:
    specs = meter_specs(2000)
    first = {m.serial: m.id for m in empty_store.sync_meters(meter_objects(specs))}
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(empty_store.engine, "before_cursor_execute", note)
    try:
        again = empty_store.sync_meters(meter_objects(specs))
        assert len(statements) <= 3, statements  # the lock (PostgreSQL), the fingerprint, serial → id
        assert not [s for s in statements if "meter_ratios" in s or "meter_accounts" in s], statements
        assert {m.serial: m.id for m in again} == first

        # another process renames a meter and drops a ratio: the next start puts the configured ones back
        _change_in_another_process(empty_store, "UPDATE meters SET name = 'edited by hand' WHERE serial = 'S000007'")
        _change_in_another_process(
            empty_store, f"DELETE FROM meter_ratios WHERE meter_id = {first['S000009']}"
        )
        statements.clear()
        empty_store.sync_meters(meter_objects(specs))
        assert len(statements) > 3  # compared again
        statements.clear()
        empty_store.sync_meters(meter_objects(specs))
        assert len(statements) <= 3, statements  # and settled
    finally:
        event.remove(empty_store.engine, "before_cursor_execute", note)
    with empty_store.engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM meters WHERE serial = 'S000007'")).scalar_one()
        ct = conn.execute(text("SELECT ct FROM meter_ratios WHERE meter_id = :i"), {"i": first["S000009"]}).all()
    assert name == "meter 7" and [float(c) for (c,) in ct] == [40.0]

    # a change in the file: the fingerprint differs, the change is applied, the ids stay
    specs[11] = {**specs[11], "name": "renamed in the file", "accounts": ["Z1"]}
    changed = empty_store.sync_meters(meter_objects(specs))
    assert {m.serial: m.id for m in changed} == first
    with empty_store.engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM meters WHERE serial = 'S000011'")).scalar_one()
        accounts = conn.execute(
            text("SELECT account FROM meter_accounts WHERE meter_id = :i"), {"i": first["S000011"]}
        ).scalars().all()
    assert name == "renamed in the file" and accounts == ["Z1"]


def test_ratio_steps_are_synced_and_removed(empty_store: Store) -> None:
    steps = [{"since": "2026-03-01", "ratio": 80}, {"ratio": 40}]
    specs = [*meter_specs(3)]
    specs[1] = {**specs[1], "ct_ratio": steps, "vt_ratio": 100}
    ids = {m.serial: m.id for m in empty_store.sync_meters(meter_objects(specs))}

    def stored() -> list[tuple[int, bool, float, float]]:
        with empty_store.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT version, since, ct, vt FROM meter_ratios WHERE meter_id = :i ORDER BY version"),
                {"i": ids["S000001"]},
            ).all()
        return [(int(v), s is not None, float(c), float(t)) for v, s, c, t in rows]

    assert stored() == [(0, False, 40.0, 100.0), (1, True, 80.0, 100.0)]
    specs[1] = {**specs[1], "ct_ratio": 20, "vt_ratio": 1}
    empty_store.sync_meters(meter_objects(specs))
    assert stored() == [(0, False, 20.0, 1.0)]
