"""Loading the registry for a running process (`amr.registry.shaped`): once per shape, equal to entry by entry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from amr.config import config_from_dict, load_config
from amr.errors import ConfigError
from amr.registry.changes import apply, stored_config
from amr.registry.entries import config_entries
from amr.registry.load import load
from amr.store import Store
from amr.store.models import meters_table
from tests.support.registry_config import every_kind, write


def _many(data: dict[str, Any]) -> dict[str, Any]:
    """The demo's meters, ratio steps and a service date among them, and 60 more of two shapes on one bus."""
    meters = [dict(m) for m in data["meters"]]
    first = next(m for m in meters if m["serial"] == "MB-101")
    first["ct_ratio"] = [{"ratio": 40}, {"since": "2026-03-01", "ratio": 80}]
    first["installed"] = "2025-06-01T10:00:00+03:00"
    for i in range(60):
        meters.append({
            "serial": f"7{i:05d}", "name": f"кв. {i}" if i % 3 else "", "object": f"дом {i // 20}" if i % 7 else "",
            "point": f"kv-{i}" if i % 5 else "", "accounts": [f"{9000 + i}", f"{8000 + i}"][: 1 + i % 2],
            "ct_ratio": 40 if i % 2 else 1, "bus": "modbus-tcp", "address": 100 + i, "profile": "eastron-sdm630",
        })
    return {**data, "meters": meters}


def test_loaded_by_shape_equals_the_registry_read_entry_by_entry(empty_database: str, tmp_path: Path) -> None:
    data = _many(every_kind(empty_database))
    wanted = load_config(write(tmp_path / "amr.toml", data))
    store = Store.open(wanted.database, "Europe/Moscow")
    try:
        apply(store, wanted)
        runtime = load_config(write(tmp_path / "run.toml", {"database": {"url": empty_database},
                                                            "registry": {"source": "database"}}))
        loaded = load(store, runtime)
        with store.engine.connect() as conn:
            each, ids = stored_config(conn, runtime)
        assert config_entries(loaded.config) == config_entries(each) == config_entries(wanted)
        assert [b.model_dump() for b in loaded.config.buses] == [b.model_dump() for b in each.buses]
        assert [m.model_dump() for m in loaded.config.meters] == [m.model_dump() for m in each.meters]
        expected = [m.take_id(ids[m.serial]) for m in each.meter_objects()]
        assert loaded.meters == expected and all(m.id > 0 for m in loaded.meters)
        by_serial = {m.serial: m for m in loaded.meters}
        assert by_serial["700001"].accounts == ("8001", "9001")
        assert by_serial["700000"].name == "700000" and by_serial["700000"].point == "700000"
        assert by_serial["700003"].ratio_at(datetime(2026, 1, 1, tzinfo=UTC)) == 40
        assert by_serial["MB-101"].ratio_at(datetime(2026, 3, 2, tzinfo=UTC)) == 80
    finally:
        store.close()


def test_an_address_taken_twice_in_the_store_is_refused_naming_both_meters(empty_database: str, tmp_path: Path) -> None:
    data = _many(every_kind(empty_database))
    store = Store.open(config_from_dict({"database": {"url": empty_database}}, {}).database, "Europe/Moscow")
    try:
        apply(store, load_config(write(tmp_path / "amr.toml", data)))
        with store.engine.begin() as conn:  # as a hand edit of the table would leave it
            conn.execute(update(meters_table).where(meters_table.c.serial == "700007").values(address="106"))
        runtime = load_config(write(tmp_path / "run.toml", {"database": {"url": empty_database},
                                                            "registry": {"source": "database"}}))
        with pytest.raises(ConfigError, match=r"meter 700007: address 106 on bus 'modbus-tcp' is already meter 700006"):
            load(store, runtime)
        with store.engine.begin() as conn:  # a stored setting no version accepts: the meter and the key are named
            conn.execute(update(meters_table).where(meters_table.c.serial == "700007")
                         .values(address="107", settings='{"profile": "nope"}'))
        with pytest.raises(ConfigError, match=r"meter registry: meter 700007.profile: unknown profile .nope."):
            load(store, runtime)
    finally:
        store.close()


def test_a_stored_address_its_driver_refuses_is_logged_and_can_be_corrected(
    empty_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored address the meter's driver refuses (a hand edit, or a release whose drivers judged less) never
    stops the registry from loading, nor from being exported and corrected: it is named in the log, whichever
    meter of its shape holds it, and a file that corrects it is applied."""
    data = _many(every_kind(empty_database))
    store = Store.open(config_from_dict({"database": {"url": empty_database}}, {}).database, "Europe/Moscow")
    try:
        file = load_config(write(tmp_path / "amr.toml", data))
        apply(store, file)
        runtime = load_config(write(tmp_path / "run.toml", {"database": {"url": empty_database},
                                                            "registry": {"source": "database"}}))
        with store.engine.begin() as conn:
            bus = conn.execute(text("SELECT bus_id FROM meters WHERE serial = '700008'")).scalar()
            first = conn.execute(text("SELECT min(serial) FROM meters WHERE bus_id = :bus"), {"bus": bus}).scalar()
            for serial, address in (("700008", '"abc"'), (first, "99999999999999999999")):
                conn.execute(text("UPDATE meters SET address = :address WHERE serial = :serial"),
                             {"address": address, "serial": serial})
        assert first != "700008"
        with caplog.at_level("WARNING", logger="amr.registry.shaped"):
            loaded = load(store, runtime)
        assert {m.serial for m in loaded.config.meters} == {m.serial for m in file.meters}
        warned = caplog.text
        assert "2 meter(s) of the registry have an address their protocol cannot poll" in warned
        assert "700008 ('abc' is not a Modbus unit id; write a whole number 0..255" in warned
        assert f"{first} (99999999999999999999 is not a Modbus unit id" in warned
        with store.engine.connect() as conn:
            stored, _ = stored_config(conn, runtime)  # what `amr registry export` and `apply` compare with
        assert next(m for m in stored.meters if m.serial == "700008").address == "abc"
        apply(store, file)  # the file's own addresses are judged, and correct the stored ones
        caplog.clear()
        with caplog.at_level("WARNING", logger="amr.registry.shaped"):
            load(store, runtime)
        assert "cannot poll" not in caplog.text
        bad = {**data, "meters": [{**data["meters"][0], "address": "abc"}, *data["meters"][1:]]}
        with pytest.raises(ConfigError, match="is not a"):
            load_config(write(tmp_path / "bad.toml", bad))  # on the way in an address is judged
    finally:
        store.close()


def test_many_new_meters_are_planned_as_the_rows_they_are_within_the_apply(
    postgres_store: Store, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apply reads back the ids of the meters it has just inserted: PostgreSQL must know the table
    is no longer empty by then (statistics renewed in the transaction), or a statement it prepared
    while the table was empty scans every row for each chunk (minutes at 100,000 meters)."""
    from tests.conftest import _clean

    _clean(postgres_store)
    monkeypatch.setattr("amr.registry.changes.ANALYZE_AFTER", 10**9)  # not the apply's own ANALYZE at the end
    monkeypatch.setattr("amr.registry.rows.ANALYZE_AFTER", 20)
    data = _many(every_kind(postgres_url))
    apply(postgres_store, load_config(write(tmp_path / "amr.toml", data)))
    with postgres_store.engine.connect() as conn:
        analyzed = dict(conn.exec_driver_sql(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('meters', 'metering_points')").all())
    assert analyzed["meters"] >= len(data["meters"]) and analyzed["metering_points"] >= 20
