"""The dashboard's info lists every registered protocol, as the dashboard builds its filter from it."""

from __future__ import annotations

from amr.drivers.registry import PROTOCOLS
from tests.api.conftest import Env


def test_info_lists_every_registered_protocol(env: Env) -> None:
    info = env.client.get("/api/v1/dashboard/info", headers=env.h("disp")).json()
    listed = {p["kind"]: p for p in info["protocols"]}
    assert list(listed) == list(PROTOCOLS)
    assert listed["mercury230"]["labels"] == {"ru": "Меркурий 230", "en": "Mercury 230"}
    assert listed["mqtt"]["push"] is True and listed["modbus-tcp"]["push"] is False
    assert listed["modbus-rtu"]["source"] == "askue:modbus"
    assert "clock" in listed["iec62056-21"]["capabilities"]
