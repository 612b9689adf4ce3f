"""The meter registry in the store: `amr registry apply|import|export`, and processes reading from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from amr.app import App
from amr.cli import main
from amr.config import config_from_dict, load_config
from amr.core.domain import Channel, IncomingReading, Source
from amr.registry.changes import apply, stored_config
from amr.registry.entries import config_entries
from amr.registry.load import current_version
from amr.store import Store
from amr.store.models import audit_log_table, meters_table
from tests.support.registry_config import every_kind, write


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database's URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'amr.sqlite'}"
    from tests.conftest import _clean

    _clean(request.getfixturevalue("postgres_store"))
    url: str = request.getfixturevalue("postgres_url")
    return url


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _open(url: str) -> Store:
    return Store.open(config_from_dict({"database": {"url": url}}, {}).database, "Europe/Moscow")


def test_apply_prints_changes_writes_them_once_and_reads_back_equal(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("amr.registry.changes.ANALYZE_AFTER", 1)  # PostgreSQL's statistics renewed here too
    data = every_kind(database)
    meters, buses = len(data["meters"]), len(data["buses"])  # the demo's: 14 and 6
    file = write(tmp_path / "amr.toml", data)
    code, out, _ = run(capsys, "registry", "apply", "-c", str(file), "--dry-run")
    assert code == 0 and "+ bus dlms-tcp" in out and "+ meter MB-101" in out and "+ object ТП-12" in out
    assert f"would change: meters: {meters} added" in out
    store = _open(database)
    try:
        assert current_version(store) == 0  # a dry run writes nothing
        code, out, _ = run(capsys, "registry", "apply", "-c", str(file), "--json")
        counts = json.loads(out)
        assert counts["meters"] == {"added": meters, "changed": 0, "removed": 0}
        assert counts["buses"]["added"] == buses and counts["version"] == 1
        code, out, _ = run(capsys, "registry", "apply", "-c", str(file))
        assert code == 0 and "nothing to change" in out and current_version(store) == 1
        config = load_config(file)
        with store.engine.connect() as conn:
            back, ids = stored_config(conn, config)
            audit = conn.execute(select(audit_log_table.c.action, audit_log_table.c.actor)).all()
        assert config_entries(back) == config_entries(config)  # every key of every kind, secrets included
        assert len(ids) == meters and audit == [("registry.apply", "amr registry apply")]
    finally:
        store.close()


def _edited(data: dict[str, Any]) -> dict[str, Any]:
    meters = [m for m in data["meters"] if m["serial"] != "ME-303"]
    mb101 = next(m for m in meters if m["serial"] == "MB-101")
    mb101["ct_ratio"] = [{"ratio": 40}, {"since": "2026-03-01", "ratio": 80}]
    meters.append({"serial": "MB-105", "object": "ТП-12", "point": "mb-105", "bus": "modbus-tcp", "address": 9,
                   "profile": "eastron-sdm630"})
    dlms = next(b for b in data["buses"] if b["kind"] == "dlms-tcp")
    dlms["dlms"] = {**dlms["dlms"], "password": "n3w-secret"}
    return {**data, "meters": meters}


def test_apply_changes_retires_removed_meters_and_hides_secrets(database: str, tmp_path: Path) -> None:
    data = every_kind(database)
    first = load_config(write(tmp_path / "a.toml", data))
    store = _open(database)
    try:
        apply(store, first)
        with App.open(first) as app:
            meter = app.meters["ME-303"]
            reading = IncomingReading("ME-303", datetime(2026, 1, 1, tzinfo=UTC), 0, {Channel.A_PLUS: 1000},
                                      Source.IMPORT)
            app.ingestor.submit([reading])
        second = load_config(write(tmp_path / "b.toml", _edited(data)))
        changes = apply(store, second)
        lines = "\n".join(changes.lines())
        assert changes.meters_added == ["MB-105"] and changes.meters_removed == ["ME-303"]
        steps = "[{ ratio = 40 }, { since = 2026-02-28T21:00:00+00:00, ratio = 80 }]"
        assert f"~ meter MB-101: ct_ratio 40 → {steps}" in lines
        assert "~ bus dlms-tcp: dlms (secret) → (secret)" in lines
        assert "n3w-secret" not in lines and "s3cret-pass" not in lines
        with store.engine.connect() as conn:
            back, ids = stored_config(conn, second)
            retired = conn.execute(
                select(meters_table.c.id, meters_table.c.retired_at).where(meters_table.c.serial == "ME-303")
            ).one()
        assert "ME-303" not in ids and retired.id == meter.id and retired.retired_at is not None
        assert store.readings([meter.id])  # its readings stay
        assert config_entries(back) == config_entries(second)
        again = apply(store, first)  # back as it was: ME-303 taken back with its id
        assert again.meters_added == ["ME-303"] and again.meters_removed == ["MB-105"]
        with store.engine.connect() as conn:
            assert stored_config(conn, first)[1]["ME-303"] == meter.id
    finally:
        store.close()


def test_apply_keep_leaves_what_the_file_lacks(database: str, tmp_path: Path) -> None:
    data = every_kind(database)
    store = _open(database)
    try:
        apply(store, load_config(write(tmp_path / "a.toml", data)))
        only = {**data, "meters": [m for m in data["meters"] if m["serial"] == "MB-101"]}
        changes = apply(store, load_config(write(tmp_path / "b.toml", only)), remove=False)
        assert not changes
        with store.engine.connect() as conn:
            assert len(stored_config(conn, load_config(tmp_path / "a.toml"))[1]) == len(data["meters"])
    finally:
        store.close()


def test_import_checks_every_row_first_and_names_line_and_column(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path / "amr.toml", every_kind(database))
    assert run(capsys, "registry", "apply", "-c", str(file))[0] == 0
    assert run(capsys, "registry", "export", "-c", str(file), "-o", str(tmp_path / "m.csv"))[0] == 0
    text = (tmp_path / "m.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("serial,name,object,point,model,accounts,digits")
    iec = 'IE-401,Торговый зал,Магазин «Продукты»,ie-401,IEC 62056-21,2001,6,2,2,1,1,60,,,iec-converter,"""1001"""'
    assert iec in text  # an address of digits that is text stays text
    code, out, _ = run(capsys, "registry", "import", "-c", str(file), str(tmp_path / "m.csv"))
    assert code == 0 and "nothing to change" in out  # export → import is the same registry

    lines = text.splitlines()
    sdm, nope = '"{ profile = ""eastron-sdm630"" }"', '"{ profile = ""nope"" }"'
    lines.append(f"MB-106,Новый,ТП-12,mb-106,,,6,2,1,40,1,,2026-02-01,,modbus-tcp,10,,,,{sdm}")
    lines.append(f"MB-107,Ещё,ТП-12,mb-107,,,15,2,1,1,1,,,,modbus-tcp,11,,,,{nope}")
    lines.append(f"MB-108,Третий,ТП-12,mb-108,,,6,2,1,1,1,,,,modbus-tcp,10,,,,{sdm}")
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "registry", "import", "-c", str(file), str(tmp_path / "bad.csv"))
    assert code == 1
    assert f"{tmp_path / 'bad.csv'}:17: column digits: Input should be less than or equal to 12; got 15" in err
    assert f"{tmp_path / 'bad.csv'}:17: column settings: profile: unknown profile 'nope'" in err

    del lines[-2]  # the row with errors of its own: left is an address taken twice on one bus
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "registry", "import", "-c", str(file), str(tmp_path / "bad.csv"))
    assert code == 1  # a bad row, as the README says, not a configuration error
    assert f"{tmp_path / 'bad.csv'}:17: column address: 10 on bus 'modbus-tcp' is already meter MB-106" in err

    clash = [*lines[:-2], f"MB-109,Ещё один,ТП-12,mb-109,,,6,2,1,1,1,,,,modbus-tcp,2,,,,{sdm}",
             f"MB-110,Пятый,ТП-12,mb-110,,,6,2,1,1,1,,,,modbus-tcp,abc,,,,{sdm}"]
    (tmp_path / "clash.csv").write_text("\n".join(clash) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "registry", "import", "-c", str(file), str(tmp_path / "clash.csv"))
    assert code == 1 and "meters[" not in err
    assert "clash.csv:16: column address: 2 on bus 'modbus-tcp' is already meter MB-102" in err  # on line 3
    assert "clash.csv:17: column address: 'abc' is not a Modbus unit id; write a whole number 0..255" in err
    del clash[-1]  # left: an address held by a meter already in the registry (and not in the file)
    clash = [row for row in clash if not row.startswith("MB-102,")]
    (tmp_path / "clash.csv").write_text("\n".join(clash) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "registry", "import", "-c", str(file), str(tmp_path / "clash.csv"))
    assert code == 1 and "meters[" not in err
    assert f"{tmp_path / 'clash.csv'}:15: column address: 2 on bus 'modbus-tcp' is already meter MB-102" in err
    moved = [row.replace(",modbus-tcp,1,", ",modbus-tcp,2,") if row.startswith("MB-101,") else row for row in clash]
    (tmp_path / "clash.csv").write_text("\n".join(moved[:-1]) + "\n", encoding="utf-8")  # MB-101 moved to 2
    code, _, err = run(capsys, "registry", "import", "-c", str(file), str(tmp_path / "clash.csv"))
    assert code == 1 and "clash.csv:5: column address: 2 on bus 'modbus-tcp' is already meter MB-102" in err
    store = _open(database)
    try:
        assert current_version(store) == 1  # nothing of either file was written
    finally:
        store.close()

    del lines[-1]
    (tmp_path / "ok.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "registry", "import", "-c", str(file), str(tmp_path / "ok.csv"), "--json")
    assert code == 0 and json.loads(out)["meters"] == {"added": 1, "changed": 0, "removed": 0}


def test_a_process_on_the_registry_takes_changes_without_restarting(database: str, tmp_path: Path) -> None:
    data = every_kind(database)
    store = _open(database)
    try:
        apply(store, load_config(write(tmp_path / "a.toml", data)))
        runtime = {"database": {"url": database}, "registry": {"source": "database"}, "site": data["site"]}
        app = App.open(write(tmp_path / "run.toml", runtime))
        try:
            assert len(app.meters) == len(data["meters"])
            assert {b.name for b in app.config.buses} >= {"modbus-tcp", "dlms-tcp"}
            assert app.meters["MB-101"].ratio_at(datetime(2026, 1, 1, tzinfo=UTC)) == 40
            assert not app.refresh()
            apply(store, load_config(write(tmp_path / "b.toml", _edited(data))))
            assert app.refresh()
            assert "MB-105" in app.meters and "ME-303" not in app.meters
            assert app.meters["MB-101"].ratio_at(datetime(2026, 3, 2, tzinfo=UTC)) == 80
            assert "MB-105" in app.ingestor.meters
        finally:
            app.close()
    finally:
        store.close()


def test_two_applies_at_once_take_turns_and_neither_half_applies(postgres_store: Store, postgres_url: str,
                                                                  tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import _clean

    _clean(postgres_store)
    data = every_kind(postgres_url)
    one = load_config(write(tmp_path / "one.toml", data))
    other = load_config(write(tmp_path / "other.toml", _edited(data)))
    stores = [_open(postgres_url), _open(postgres_url)]
    try:
        with ThreadPoolExecutor(2) as pool:
            done = list(pool.map(lambda job: apply(job[0], job[1]), zip(stores, [one, other], strict=True)))
        assert sorted(c.version for c in done if c.version is not None) == [1, 2]
        last = one if done[0].version == 2 else other  # the later of the two holds, whole
        with postgres_store.engine.connect() as conn:
            held, _ = stored_config(conn, last)
        assert config_entries(held) == config_entries(last)
    finally:
        for store in stores:
            store.close()


def test_a_file_on_the_registry_says_its_own_meters_are_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = every_kind(f"sqlite:///{tmp_path / 'amr.sqlite'}")
    with App.open(config_from_dict({**data, "registry": {"source": "database"}}, {})) as app:
        assert app.meters == {}  # nothing applied yet: the registry is empty, the file's meters are not taken
    told = f"its {len(data['meters'])} [[meters]] and {len(data['buses'])} [[buses]] are not used"
    assert f"{told}; apply them with amr registry apply" in caplog.text


def test_health_and_clock_checks_of_100000_meters_load_on_postgresql(postgres_store: Store) -> None:
    from amr.store.events import ClockCheck, load_clock, save_clock
    from amr.store.health import HealthRecord, load_health, save_health
    from tests.conftest import _clean

    _clean(postgres_store)
    config = config_from_dict({"meters": [{"serial": "H1"}, {"serial": "H2"}]}, {})
    meter, other = postgres_store.sync_meters(config.meter_objects())
    save_health(postgres_store, [HealthRecord(meter.id, "online")])
    for each in (meter, other):
        save_clock(postgres_store, ClockCheck(each.id, datetime.now(UTC), "ok"))
    # a collector of 100,000 meters asks for all of them: more ids than a statement takes parameters
    many = [i for i in range(meter.id - 50_000, meter.id + 50_001) if i != other.id]
    assert list(load_health(postgres_store, many)) == [meter.id]
    assert load_health(postgres_store, [meter.id + 1]) == {}
    assert list(load_clock(postgres_store, many)) == [meter.id]  # only the meters asked for
    assert list(load_clock(postgres_store, [other.id])) == [other.id]


def test_the_collector_restarts_only_when_how_meters_are_reached_changes(tmp_path: Path) -> None:
    import asyncio

    from amr.registry.collecting import collect

    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
        "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        "registry": {"source": "database", "watch_interval": "100ms"},
        "buses": [{"name": "tcp", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:9", "schedule": "1h"}],
        "meters": [{"serial": "A1", "bus": "tcp", "address": 1, "profile": "eastron-sdm630"}],
    }
    filled = config_from_dict(data, {})
    app = App.open(config_from_dict({**data, "buses": [], "meters": []}, {}))
    builds: list[Any] = []

    async def until(what: str, check: Any) -> None:
        for _ in range(100):  # up to 10 s; a watch interval is 0.1 s
            if check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(what)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(collect(app, stop, started=builds.append))
        await until("the first collector", lambda: len(builds) == 1)
        assert not builds[0].polled  # nothing in the registry yet
        apply(app.store, filled)
        await until("a collector of A1", lambda: len(builds) == 2 and "A1" in builds[1].polled)
        rerated = {**data, "meters": [{**data["meters"][0], "ct_ratio": 40, "name": "Ввод"}]}
        apply(app.store, config_from_dict(rerated, {}))
        await until("the ratio taken", lambda: app.meters["A1"].ratio_at(datetime(2026, 1, 1, tzinfo=UTC)) == 40)
        await asyncio.sleep(0.5)
        assert len(builds) == 2  # a ratio and a name: the running collector reads them from the app
        moved = {**rerated, "meters": [{**rerated["meters"][0], "address": 2}]}
        apply(app.store, config_from_dict(moved, {}))
        await until("a collector of the new address", lambda: len(builds) == 3)
        assert builds[2].meters["A1"].address == 2
        stop.set()
        await task

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        app.close()
