"""``/api/v1/registry``: admins edit meters and buses of the registry, validated as the configuration is."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

from amr.registry.changes import apply
from tests.api.conftest import Env

BASE = "/api/v1/registry"
SDM = {"bus": "tcp", "profile": "eastron-sdm630"}


def _on_registry(env: Env) -> None:
    """Switch the Env's process to ``[registry] source = "database"``, holding its three meters."""
    config = env.app.config
    config = config.model_copy(update={"registry": config.registry.model_copy(update={"source": "database"})})
    apply(env.app.store, config)
    env.app.config = config
    env.app.registry_version = -1  # anything else than the store's: the next refresh loads it
    assert env.app.refresh()


def test_only_admins_and_only_on_the_registry(env: Env) -> None:
    assert env.client.get(f"{BASE}/meters", headers=env.h("disp")).status_code == 403
    assert env.client.get(f"{BASE}/meters", headers=env.h("ivan")).status_code == 403
    answer = env.client.put(f"{BASE}/meters/M9", json={"name": "x"}, headers=env.h("root"))
    assert answer.status_code == 409 and answer.json()["code"] == "registry_not_in_use"


def test_buses_and_meters_created_checked_paged_and_removed(env: Env) -> None:
    _on_registry(env)
    root = env.h("root", "en")  # the messages asserted are the English ones
    bus = {"kind": "modbus-tcp", "url": "tcp://127.0.0.1:5020", "schedule": "15m"}
    assert env.client.put(f"{BASE}/buses/tcp", json=bus, headers=root).status_code == 201
    wrong = env.client.put(f"{BASE}/buses/rtu", json={"kind": "modbus-rtu", "url": "tcp://x:1"}, headers=root)
    assert wrong.status_code == 422 and wrong.json()["code"] == "invalid_entry"
    assert "a modbus-rtu bus is a serial line" in wrong.json()["message"]

    bad = env.client.put(f"{BASE}/meters/T1", json={**SDM, "address": 1, "profile": "nope"}, headers=root)
    assert bad.status_code == 422 and "profile: unknown profile 'nope'" in bad.json()["message"]
    late = env.client.put(f"{BASE}/meters/T1", json={**SDM, "address": 1, "timeout": "20m"}, headers=root)
    assert late.status_code == 422 and "timeout 20m is not shorter than the poll interval 15m" in late.json()["message"]
    for i in range(1, 6):
        made = env.client.put(f"{BASE}/meters/T{i}", json={**SDM, "address": i, "object": "ТП-1", "ct_ratio": 40},
                              headers=root)
        assert made.status_code == 201, made.text
    assert made.json()["meter"]["ct_ratio"] == "40" and made.json()["meter"]["point"] == "T5"
    taken = env.client.put(f"{BASE}/meters/T9", json={**SDM, "address": 3}, headers=root)
    assert taken.status_code == 409 and "is already meter T3" in taken.json()["message"]
    changed = env.client.put(f"{BASE}/meters/T1", json={**SDM, "address": 1, "name": "Ввод 1"}, headers=root)
    assert changed.status_code == 200 and changed.json()["meter"]["name"] == "Ввод 1"

    first = env.client.get(f"{BASE}/meters", params={"limit": 3}, headers=root).json()
    assert [m["serial"] for m in first["meters"]] == ["M1", "M2", "M3"] and first["next"] == "M3"
    second = env.client.get(f"{BASE}/meters", params={"limit": 3, "after": first["next"]}, headers=root).json()
    assert [m["serial"] for m in second["meters"]] == ["T1", "T2", "T3"]
    found = env.client.get(f"{BASE}/meters", params={"search": "ввод"}, headers=root).json()
    assert [m["serial"] for m in found["meters"]] == ["M3", "T1"] and found["next"] is None

    assert env.app.refresh() and env.app.meters["T2"].ratio_at(datetime(2026, 1, 1, tzinfo=UTC)) == 40
    busy = env.client.delete(f"{BASE}/buses/tcp", headers=root)
    assert busy.status_code == 409 and "has 5 meter(s)" in busy.json()["message"]
    assert env.client.delete(f"{BASE}/meters/T5", params={"reason": "demolished"}, headers=root).status_code == 200
    assert env.client.get(f"{BASE}/meters/T5", headers=root).status_code == 404
    assert env.app.refresh() and "T5" not in env.app.meters
    audit = env.client.get("/api/v1/dashboard/audit", headers=root).json()
    assert {"registry.bus.put", "registry.meter.put", "registry.meter.remove"} <= {a["action"] for a in audit}
    assert all(a["actor"] == "root" for a in audit if a["action"].startswith("registry."))


def test_an_address_the_driver_cannot_use_is_refused(env: Env) -> None:
    _on_registry(env)
    root = env.h("root", "en")
    env.client.put(f"{BASE}/buses/tcp", json={"kind": "modbus-tcp", "url": "tcp://127.0.0.1:5020"}, headers=root)
    for address in ("abc", "99999999999999999999", 99999999999999999999, 256):
        refused = env.client.put(f"{BASE}/meters/T1", json={**SDM, "address": address}, headers=root)
        assert refused.status_code == 422 and refused.json()["code"] == "invalid_entry", (address, refused.text)
        assert f"(T1).address: {address!r} is not a Modbus unit id; write a whole number 0..255" in (
            refused.json()["message"])
    assert env.client.get(f"{BASE}/meters/T1", headers=root).status_code == 404
    gateway = env.client.put(f"{BASE}/meters/T1", json={**SDM, "address": "10.0.0.7:502/3"}, headers=root)
    assert gateway.status_code == 201, gateway.text
    env.client.put(f"{BASE}/meters/T2", json={**SDM, "address": 2, "point": "p2"}, headers=root)
    swapped = env.client.post(f"{BASE}/points/p2/replace", headers=root, json={
        "at": "2026-05-10T12:00:00+03:00", "meter": {"serial": "T3", **SDM, "address": "x"}})
    assert swapped.status_code == 422 and "'x' is not a Modbus unit id" in swapped.json()["message"]


def test_new_ratio_from_a_date_and_a_meter_replaced_on_its_point(env: Env) -> None:
    _on_registry(env)
    root = env.h("root", "en")  # the messages asserted are the English ones
    env.client.put(f"{BASE}/buses/tcp", json={"kind": "modbus-tcp", "url": "tcp://127.0.0.1:5020"}, headers=root)
    env.client.put(f"{BASE}/meters/T1", json={**SDM, "address": 1, "point": "p1", "installed": "2026-01-01"},
                   headers=root)
    step = env.client.post(f"{BASE}/meters/T1/ratios", json={"since": "2026-04-01", "ct_ratio": "80"}, headers=root)
    assert step.status_code == 200, step.text
    assert step.json()["meter"]["ct_ratio"] == [{"ratio": "1"}, {"since": "2026-03-31T21:00:00+00:00", "ratio": "80"}]
    older = env.client.post(f"{BASE}/meters/T1/ratios", json={"since": "2026-02-01", "ct_ratio": 2}, headers=root)
    assert older.status_code == 409 and "a new ratio starts later" in older.json()["message"]
    assert "in force from 2026-04-01 00:00+03:00" in older.json()["message"]  # the site's time, not UTC
    russian = env.client.post(f"{BASE}/meters/T1/ratios", json={"since": "2026-02-01", "ct_ratio": 2},
                              headers=env.h("root", "ru")).json()["message"]
    assert russian == ("счётчик T1: коэффициент действует с 2026-04-01 00:00+03:00; "
                       "новый должен начинаться позже всех прежних")
    env.app.refresh()
    meter = env.app.meters["T1"]
    assert meter.ratio_at(datetime(2026, 3, 31, 20, tzinfo=UTC)) == 1
    assert meter.ratio_at(datetime(2026, 3, 31, 21, tzinfo=UTC)) == Fraction(80)

    body = {"at": "2026-05-10T12:00:00+03:00", "meter": {"serial": "T2", **SDM, "address": 2}, "reason": "burnt"}
    swapped = env.client.post(f"{BASE}/points/p1/replace", json=body, headers=root)
    assert swapped.status_code == 200, swapped.text
    old, new = swapped.json()["removed"], swapped.json()["installed"]
    assert old["serial"] == "T1" and old["removed"] == "2026-05-10T09:00:00+00:00" and "bus" not in old
    assert new["serial"] == "T2" and new["point"] == "p1" and new["installed"] == "2026-05-10T09:00:00+00:00"
    again = env.client.post(f"{BASE}/points/p1/replace", json={**body, "at": "2026-05-01T00:00:00+03:00",
                                                                 "meter": {"serial": "T3"}}, headers=root)
    assert again.status_code == 409  # T2 is installed later than that
    env.app.refresh()
    assert [m.serial for m in env.app.point_meters("p1")] == ["T1", "T2"]
    assert env.app.meters["T1"].removed == datetime(2026, 5, 10, 9, tzinfo=UTC)


def test_a_new_ratio_of_one_transformer_keeps_the_other(env: Env) -> None:
    _on_registry(env)
    root = env.h("root")
    env.client.put(f"{BASE}/buses/tcp", json={"kind": "modbus-tcp", "url": "tcp://127.0.0.1:5020"}, headers=root)
    made = env.client.put(f"{BASE}/meters/T1", json={**SDM, "address": 1, "ct_ratio": 40, "vt_ratio": 100},
                          headers=root)
    assert made.status_code == 201, made.text
    ct = env.client.post(f"{BASE}/meters/T1/ratios", json={"since": "2026-04-01", "ct_ratio": "80"}, headers=root)
    assert ct.status_code == 200, ct.text
    april = "2026-03-31T21:00:00+00:00"
    assert ct.json()["meter"]["ct_ratio"] == [{"ratio": "40"}, {"since": april, "ratio": "80"}]
    assert ct.json()["meter"]["vt_ratio"] == [{"ratio": "100"}, {"since": april, "ratio": "100"}]
    vt = env.client.post(f"{BASE}/meters/T1/ratios", json={"since": "2026-05-01", "vt_ratio": 110}, headers=root)
    assert vt.status_code == 200, vt.text
    assert [s["ratio"] for s in vt.json()["meter"]["ct_ratio"]] == ["40", "80", "80"]
    assert [s["ratio"] for s in vt.json()["meter"]["vt_ratio"]] == ["100", "100", "110"]
    env.app.refresh()
    meter = env.app.meters["T1"]
    assert meter.ratio_at(datetime(2026, 3, 31, 20, tzinfo=UTC)) == 4000
    assert meter.ratio_at(datetime(2026, 4, 15, tzinfo=UTC)) == 8000
    assert meter.ratio_at(datetime(2026, 5, 15, tzinfo=UTC)) == 8800

    neither = env.client.post(f"{BASE}/meters/T1/ratios", json={"since": "2026-06-01"}, headers=root)
    assert neither.status_code == 422 and neither.json()["code"] == "invalid_input"
    assert "give ct_ratio, vt_ratio or both" in env.client.post(
        f"{BASE}/meters/T1/ratios", json={"since": "2026-06-01"}, headers=env.h("root", "en")).json()["message"]
    null = env.client.post(f"{BASE}/meters/T1/ratios", json={"since": "2026-06-01", "ct_ratio": None, "vt_ratio": 2},
                           headers=root)
    assert null.status_code == 422 and null.json()["field"] == "ct_ratio"  # left out is not the same as null
    schema = env.client.get("/openapi.json").json()["components"]["schemas"]["RatioInput"]
    assert schema["anyOf"] == [{"required": ["ct_ratio"]}, {"required": ["vt_ratio"]}]
    assert schema["required"] == ["since"] and schema["properties"]["vt_ratio"]["type"] == "string"
    assert "stays" in schema["properties"]["vt_ratio"]["description"]


def test_secrets_never_come_back(env: Env) -> None:
    _on_registry(env)
    root = env.h("root")
    bus = {"kind": "dlms-tcp", "url": "tcp://127.0.0.1:4059",
           "dlms": {"authentication": "lls", "password": "top-secret-1"}}
    made = env.client.put(f"{BASE}/buses/dl", json=bus, headers=root)
    assert made.status_code == 201, made.text
    assert made.json()["bus"]["dlms"]["password"] == "********"
    listed = env.client.get(f"{BASE}/buses", headers=root).text
    audit = env.client.get("/api/v1/dashboard/audit", headers=root).text
    assert "top-secret-1" not in listed and "top-secret-1" not in audit and "********" in listed


def test_objects_and_points_created_renamed_moved_and_removed(env: Env) -> None:
    _on_registry(env)
    root = env.h("root", "en")  # the messages asserted are the English ones
    objects = env.client.get(f"{BASE}/objects", headers=root).json()["objects"]
    assert {"name": "Дом 1", "points": 2, "meters": 2} in objects
    assert env.client.put(f"{BASE}/objects/ТП-7", json={"name": "ТП-7"}, headers=root).status_code == 201
    renamed = env.client.put(f"{BASE}/objects/Дом 1", json={"name": "Дом 1, корпус А"}, headers=root)
    assert renamed.status_code == 200
    taken = env.client.put(f"{BASE}/objects/ТП-7", json={"name": "Дом 1, корпус А"}, headers=root)
    assert taken.status_code == 409 and taken.json()["code"] == "registry_conflict"
    assert env.client.put(f"{BASE}/points/dom1-kv2", json={"object": "ТП-7"}, headers=root).status_code == 200
    assert env.client.put(f"{BASE}/points/new-1", json={"object": "ТП-8"}, headers=root).status_code == 201
    env.app.refresh()
    assert env.app.meters["M1"].object == "Дом 1, корпус А" and env.app.meters["M2"].object == "ТП-7"
    busy = env.client.delete(f"{BASE}/points/dom1-kv2", headers=root)
    assert busy.status_code == 409 and "has 1 meter(s)" in busy.json()["message"]
    assert env.client.delete(f"{BASE}/points/new-1", headers=root).status_code == 200
    assert env.client.delete(f"{BASE}/objects/ТП-7", headers=root).status_code == 409  # dom1-kv2 is there
    assert env.client.delete(f"{BASE}/objects/ТП-8", headers=root).status_code == 200
    assert env.client.delete(f"{BASE}/objects/ТП-8", headers=root).status_code == 404
    blank = env.client.put(f"{BASE}/objects/ТП-9", json={"name": "  "}, headers=root)
    assert blank.status_code == 422 and blank.json()["code"] == "invalid_entry"


def test_points_listed_a_page_at_a_time_searched_and_by_object(env: Env) -> None:
    _on_registry(env)
    root = env.h("root")
    assert env.client.get(f"{BASE}/points", headers=env.h("disp")).status_code == 403
    for code in ("new-1", "new-2"):
        assert env.client.put(f"{BASE}/points/{code}", json={"object": "ТП-8"}, headers=root).status_code == 201
    first = env.client.get(f"{BASE}/points", params={"limit": 2}, headers=root).json()
    assert first["points"] == [
        {"code": "dom1-kv1", "object": "Дом 1", "meter": "M1", "meters": 1},
        {"code": "dom1-kv2", "object": "Дом 1", "meter": "M2", "meters": 1},
    ] and first["next"] == "dom1-kv2"
    rest = env.client.get(f"{BASE}/points", params={"after": first["next"]}, headers=root).json()
    assert [p["code"] for p in rest["points"]] == ["new-1", "new-2", "north-t1"] and rest["next"] is None
    assert rest["points"][0] == {"code": "new-1", "object": "ТП-8", "meter": None, "meters": 0}
    found = env.client.get(f"{BASE}/points", params={"search": "тп-"}, headers=root).json()["points"]
    assert [p["code"] for p in found] == ["new-1", "new-2"]
    found = env.client.get(f"{BASE}/points", params={"search": "_"}, headers=root).json()["points"]
    assert found == []  # a LIKE wildcard is taken as the character itself
    of_one = env.client.get(f"{BASE}/points", params={"object": "ПС Северная"}, headers=root).json()["points"]
    assert [p["code"] for p in of_one] == ["north-t1"]


def test_objects_and_buses_listed_a_page_at_a_time_and_searched(env: Env) -> None:
    _on_registry(env)
    root = env.h("root")
    assert env.client.get(f"{BASE}/objects", headers=env.h("disp")).status_code == 403
    for name in ("ТП-7", "ТП-8", "Склад"):
        assert env.client.put(f"{BASE}/objects/{name}", json={"name": name}, headers=root).status_code == 201
    first = env.client.get(f"{BASE}/objects", params={"limit": 2}, headers=root).json()
    assert first["objects"] == [
        {"name": "Дом 1", "points": 2, "meters": 2},
        {"name": "ПС Северная", "points": 1, "meters": 1},
    ] and first["next"] == "ПС Северная"
    rest = env.client.get(f"{BASE}/objects", params={"limit": 2, "after": first["next"]}, headers=root).json()
    assert [o["name"] for o in rest["objects"]] == ["Склад", "ТП-7"] and rest["next"] == "ТП-7"
    last = env.client.get(f"{BASE}/objects", params={"limit": 2, "after": rest["next"]}, headers=root).json()
    assert last == {"objects": [{"name": "ТП-8", "points": 0, "meters": 0}], "next": None}
    found = env.client.get(f"{BASE}/objects", params={"search": "тп"}, headers=root).json()
    assert [o["name"] for o in found["objects"]] == ["ТП-7", "ТП-8"]  # any case, Cyrillic too
    assert env.client.get(f"{BASE}/objects", params={"search": "%"}, headers=root).json()["objects"] == []

    secret = {"kind": "dlms-tcp", "url": "tcp://127.0.0.1:4059", "dlms": {"password": "top-secret-9"}}
    for name in ("line-b", "line-a", "line-c"):
        bus = {"kind": "modbus-tcp", "url": f"tcp://127.0.0.1:50{ord(name[-1]) - 90}"}
        assert env.client.put(f"{BASE}/buses/{name}", json=bus, headers=root).status_code == 201
    assert env.client.put(f"{BASE}/buses/meters-dlms", json=secret, headers=root).status_code == 201
    page = env.client.get(f"{BASE}/buses", params={"limit": 2, "search": "LINE"}, headers=root).json()
    assert [b["name"] for b in page["buses"]] == ["line-a", "line-b"] and page["next"] == "line-b"
    page = env.client.get(f"{BASE}/buses", params={"limit": 2, "search": "line", "after": "line-b"}, headers=root)
    assert [b["name"] for b in page.json()["buses"]] == ["line-c"] and page.json()["next"] is None
    by_url = env.client.get(f"{BASE}/buses", params={"search": ":4059"}, headers=root).json()["buses"]
    assert [b["name"] for b in by_url] == ["meters-dlms"] and by_url[0]["dlms"]["password"] == "********"


def test_an_entry_saved_as_shown_keeps_its_secrets(env: Env) -> None:
    from amr.registry.stored import read_buses

    _on_registry(env)
    root = env.h("root")
    bus = {"kind": "dlms-tcp", "url": "tcp://127.0.0.1:4059", "dlms": {"password": "top-secret-7"}}
    assert env.client.put(f"{BASE}/buses/dl", json=bus, headers=root).status_code == 201
    shown = env.client.get(f"{BASE}/buses", params={"search": "dl"}, headers=root).json()["buses"][0]
    assert shown["dlms"]["password"] == "********"
    saved = env.client.put(f"{BASE}/buses/dl", json={**shown, "schedule": "30m"}, headers=root)
    assert saved.status_code == 200, saved.text
    with env.app.store.engine.connect() as conn:
        stored = next(b for b in read_buses(conn) if b["name"] == "dl")
    assert stored["dlms"]["password"] == "top-secret-7" and stored["schedule"] == {"every": "30m"}

    new = env.client.put(f"{BASE}/buses/dl2", json={**shown, "name": "dl2"}, headers=root)
    assert new.status_code == 422 and "dlms.password" in new.json()["message"]
    assert "type the secret itself" in new.json()["message"]
