"""The demo's simulated field: meters of every kind on real transports, and the configuration that reaches them.

=========  ==========================  ======================================================
serial     protocol, transport          behaviour
=========  ==========================  ======================================================
MB-101..4  Modbus TCP, one port,        Eastron SDM630 map; MB-101/102 behind CT 40 and 30;
           unit ids 1..4                MB-103's map asks for a register the meter lacks
                                        (degraded); MB-104 now and then sends A+ lower than
                                        before (refused: lower_than_previous)
RT-201/2   Modbus RTU on a pty,         Eastron SDM630 map, 19200 baud
           units 1, 2
ME-301..3  Mercury 230 on a pty,        two tariff zones; ME-302's register wraps through zero
           addresses 17..19             (flagged rollover); ME-303 stops answering (offline);
                                        ME-301's clock runs `ME301_DRIFT` ahead (corrected), and
                                        the journals hold a power cut, a cover opened, a phase lost
IE-401     IEC 62056-21 over TCP        a socket:// RS-485 converter, signs on at 9600 baud
MQ-501/2   MQTT gateway (amr JSON)      MQ-501 is a prosumer: solar export shows in A-
DL-601/2   DLMS/COSEM (СПОДЭС), TCP     public client, four tariffs; DL-602's clock runs
           wrapper, a port each         `DRIFT` ahead (shifted back by the collector)
=========  ==========================  ======================================================
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from amr.core.domain import Channel, Values
from simulators.model import Faults, VirtualMeter

SITE_TIMEZONE = "Europe/Moscow"
HISTORY_DAYS = 45  # daily readings this far back
PROFILE_DAYS = 3  # 30-minute readings over the last days
MODBUS_PROFILE = "eastron-sdm630"
GLITCH_WH = 5_000  # MB-104 reports A+ 5 kWh lower now and then
GLITCH_PERIOD_S = 360  # once every 6 minutes, for 10 seconds
SILENT_SINCE = timedelta(hours=3)  # ME-303 answered until 3 hours ago
WRAP_AGO = timedelta(hours=20)  # ME-302's register wrapped about this long ago
LOAD_FACTOR = 0.836  # the model's mean daily load ÷ its base power
DRIFT = timedelta(minutes=4)  # DL-602's clock runs this far ahead
CLOCK_METER = "DL-602"  # read as the configurator, so the collector shifts its clock (shift_time, ±900 s)
RELAY_METER = "DL-601"  # its relay may be switched from the dashboard (as the configurator)
CONFIGURATOR_PASSWORD = "1234567812345678"  # the simulated СПОДЭС meters' client 48 (simulators.dlms.server)
ME301_DRIFT = timedelta(seconds=50)  # ME-301's clock runs this far ahead: the collector corrects it (±4 min a day)


@dataclass
class DemoMeter(VirtualMeter):
    """A virtual meter that, when `glitch_wh` is set, reports A+ that much lower for ten seconds
    every `GLITCH_PERIOD_S` while `live`."""

    glitch_wh: int = 0
    live: bool = False

    def glitching(self, now: datetime) -> bool:
        """True in the ten seconds of each period when this meter misreports."""
        return bool(self.glitch_wh) and int(now.timestamp()) % GLITCH_PERIOD_S < 10

    def registers(self, now: datetime | None = None) -> dict[int, Values]:
        """As `VirtualMeter.registers`, lowered while glitching."""
        moment = now or datetime.now(UTC)
        shown = super().registers(moment)
        if self.live and self.glitching(moment):
            lower(shown, self.glitch_wh)
        return shown


def lower(registers: dict[int, Values], wh: int) -> None:
    """Lower every tariff's A+ by `wh` in place."""
    for values in registers.values():
        value = values.get(Channel.A_PLUS)
        if value is not None:
            values[Channel.A_PLUS] = max(0, value - wh)


@dataclass
class Spec:
    """One demo meter: the configuration entry and its virtual twin."""

    serial: str
    name: str
    object: str
    kind: str
    address: int | str | None
    tariffs: int = 1
    model: str = ""
    ct: int = 1
    accounts: list[str] = field(default_factory=list)
    registers: list[dict[str, Any]] = field(default_factory=list)
    base_kw: float = 1.5
    solar_kw: float = 0.0
    faults: Faults = field(default_factory=Faults)
    glitch_wh: int = 0
    silent_since: timedelta | None = None
    virtual: DemoMeter = field(init=False)

    def build(self, start: datetime) -> DemoMeter:
        """Make the virtual meter, its model starting at `start`."""
        self.virtual = DemoMeter(
            serial=self.serial,
            address=self.address if self.address is not None else 0,
            tariffs=self.tariffs,
            base_kw=self.base_kw,
            solar_kw=self.solar_kw,
            start=start,
            faults=self.faults,
            glitch_wh=self.glitch_wh,
        )
        return self.virtual

    @property
    def source(self) -> str:
        """The source its readings get."""
        if self.kind.startswith("modbus"):
            return "askue:modbus"
        if self.kind.startswith("dlms"):
            return "askue:dlms"
        return "askue:mqtt" if self.kind == "mqtt" else "askue:serial"


def specs() -> list[Spec]:
    """The demo's meters."""
    north, tp, house, shop, cottages = (
        "ПС 110 кВ «Северная»",
        "ТП-12",
        "Дом, ул. Ленина, 5",
        "Магазин «Продукты»",
        "Посёлок «Сосновый»",
    )
    history_hours = (HISTORY_DAYS * 24) - WRAP_AGO.total_seconds() / 3600
    wrap = Faults(wrap_after=timedelta(hours=history_hours * LOAD_FACTOR))
    return [
        Spec("MB-101", "Ввод Т-1 10 кВ", north, "modbus-tcp", 1, model="Eastron SDM630", ct=40, base_kw=2.2),
        Spec("MB-102", "Ввод Т-2 10 кВ", north, "modbus-tcp", 2, model="Eastron SDM630", ct=30, base_kw=1.8),
        Spec(
            "MB-103", "Фидер 3 (собственные нужды)", north, "modbus-tcp", 3, model="Eastron SDM630", base_kw=3.5,
            registers=[{"channel": "a_plus", "tariff": 1, "function": 4, "address": 0x0158, "type": "float32",
                        "unit": "kWh", "decimals": 2}],
        ),
        Spec("MB-104", "Фидер 4 (насосная)", north, "modbus-tcp", 4, model="Eastron SDM630", base_kw=4.0,
             glitch_wh=GLITCH_WH),
        Spec("RT-201", "ВРУ-1, щит освещения", tp, "modbus-rtu", 1, model="Eastron SDM630", base_kw=1.2),
        Spec("RT-202", "ВРУ-2, лифты", tp, "modbus-rtu", 2, model="Eastron SDM630", base_kw=2.6),
        Spec("ME-301", "кв. 12", house, "mercury230", 17, tariffs=2, model="Меркурий 230", accounts=["1001"],
             faults=Faults(clock_drift=ME301_DRIFT)),
        Spec("ME-302", "кв. 14", house, "mercury230", 18, tariffs=2, model="Меркурий 230", accounts=["1001"],
             base_kw=1.1, faults=wrap),
        Spec("ME-303", "кв. 15", house, "mercury230", 19, tariffs=2, model="Меркурий 230", accounts=["1002"],
             faults=Faults(silent=True), silent_since=SILENT_SINCE),
        Spec("IE-401", "Торговый зал", shop, "iec62056-21", "1001", tariffs=2, model="IEC 62056-21",
             accounts=["2001"], base_kw=6.0),
        Spec("MQ-501", "Коттедж 7 (солнечные панели)", cottages, "mqtt", None, tariffs=2, model="шлюз MQTT",
             accounts=["3001"], base_kw=1.4, solar_kw=4.5),
        Spec("MQ-502", "Коттедж 9", cottages, "mqtt", None, tariffs=2, model="шлюз MQTT", accounts=["3002"]),
        Spec("DL-601", "Коттедж 11", cottages, "dlms-tcp", 17, tariffs=4, model="СПОДЭС (DLMS/COSEM)",
             accounts=["3003"], base_kw=1.6),
        Spec("DL-602", "Коттедж 12", cottages, "dlms-tcp", 18, tariffs=4, model="СПОДЭС (DLMS/COSEM)",
             accounts=["3004"], base_kw=1.3, faults=Faults(clock_drift=DRIFT)),
    ]


@dataclass
class Field:
    """The running simulators: where each kind listens."""

    meters: list[Spec]
    urls: dict[str, str]
    hosts: dict[str, str] = field(default_factory=dict)  # serial → "host:port" of a meter with its own port
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def mqtt_topic(self) -> str:
        """The topic pattern the demo's gateway publishes to (unique per run, so demos never mix)."""
        return f"amr/demo/{self.run_id}/{{serial}}/energy"

    def of(self, kind: str) -> list[Spec]:
        """The meters of one kind."""
        return [m for m in self.meters if m.kind == kind]


@contextlib.asynccontextmanager
async def simulators(meters: list[Spec]) -> AsyncIterator[Field]:
    """Start the Modbus TCP, Modbus RTU (pty), Mercury 230 (pty), IEC (TCP) and DLMS (TCP wrapper) simulators."""
    from simulators.dlms import DlmsWrapperSimulator
    from simulators.modbus import ModbusRtuSimulator, ModbusTcpSimulator
    from simulators.serial_meters import IecSimulator, MercurySimulator

    def virtual(kind: str) -> list[VirtualMeter]:
        return [m.virtual for m in meters if m.kind == kind]

    async with contextlib.AsyncExitStack() as stack:
        tcp = await stack.enter_async_context(ModbusTcpSimulator(virtual("modbus-tcp"), profile=MODBUS_PROFILE))
        rtu = await stack.enter_async_context(
            ModbusRtuSimulator(virtual("modbus-rtu"), transport="pty", baudrate=19200, profile=MODBUS_PROFILE)
        )
        seed_journals(virtual("mercury230"))
        mercury = await stack.enter_async_context(MercurySimulator(virtual("mercury230"), transport="pty"))
        iec = await stack.enter_async_context(IecSimulator(virtual("iec62056-21"), transport="tcp", baudrate=9600))
        dlms = await stack.enter_async_context(DlmsWrapperSimulator(virtual("dlms-tcp")))
        hosts = {m.serial: dlms.url(m.serial).split("://", 1)[1] for m in dlms.meters}
        yield Field(meters, {"modbus-tcp": tcp.url, "modbus-rtu": rtu.url, "mercury230": mercury.url,
                             "iec62056-21": iec.url, "dlms-tcp": dlms.url(dlms.meters[0].serial)}, hosts)


def seed_journals(meters: list[VirtualMeter]) -> None:
    """Events in the Mercury meters' journals: a power cut and an opened cover, for the event timeline."""
    from zoneinfo import ZoneInfo

    from amr.protocols.mercury230_time import TimeArray

    now = datetime.now(UTC).astimezone(ZoneInfo(SITE_TIMEZONE)).replace(tzinfo=None, microsecond=0)
    for meter in meters:
        if meter.serial == "ME-301":
            meter.journal.add(TimeArray.POWER, now - timedelta(days=2, hours=5), now - timedelta(days=2, hours=4))
            meter.journal.add(TimeArray.COVER, now - timedelta(days=1, hours=3), now - timedelta(days=1, hours=2))
        if meter.serial == "ME-302":
            meter.journal.add(TimeArray.PHASE_2, now - timedelta(hours=6), now - timedelta(hours=5, minutes=50))


def config_data(fld: Field, folder: Path, mqtt_url: str | None, port: int) -> dict[str, Any]:
    """The demo's whole configuration as TOML-ready data."""
    common = {"timeout": "1s", "retries": 1, "retry_backoff": "200ms"}
    buses: list[dict[str, Any]] = [
        {"name": "modbus-tcp", "kind": "modbus-tcp", "url": fld.urls["modbus-tcp"], "schedule": "10s", **common},
        {"name": "rs485-rtu", "kind": "modbus-rtu", "url": fld.urls["modbus-rtu"], "baudrate": 19200,
         "frame_pause": "5ms", "schedule": "15s", **common},
        {"name": "rs485-mercury", "kind": "mercury230", "url": fld.urls["mercury230"], "baudrate": 9600,
         "frame_pause": "5ms", "schedule": "10s", "timeout": "500ms", "retries": 1, "retry_backoff": "100ms"},
        {"name": "iec-converter", "kind": "iec62056-21", "url": fld.urls["iec62056-21"], "baudrate": 9600,
         "bytesize": 7, "parity": "E", "schedule": "15s", **common},
        {"name": "dlms-tcp", "kind": "dlms-tcp", "url": fld.urls["dlms-tcp"], "schedule": "15s", **common,
         "dlms": {"transport": "wrapper", "client": 16, "authentication": "none"}},
    ]
    if mqtt_url is not None:
        buses.append(
            {"name": "mqtt-gateway", "kind": "mqtt", "url": mqtt_url,
             "topics": [fld.mqtt_topic.replace("{serial}", "+")], "payload": "amr",
             "client_id": f"amr-demo-{fld.run_id}", "qos": 1}
        )
    bus_of = {"modbus-tcp": "modbus-tcp", "modbus-rtu": "rs485-rtu", "mercury230": "rs485-mercury",
              "iec62056-21": "iec-converter", "mqtt": "mqtt-gateway", "dlms-tcp": "dlms-tcp"}
    meters = []
    for spec in fld.meters:
        entry: dict[str, Any] = {
            "serial": spec.serial, "name": spec.name, "object": spec.object, "model": spec.model,
            "point": spec.serial.lower(), "tariffs": spec.tariffs, "max_power_kw": 60,
        }
        if spec.ct != 1:
            entry["ct_ratio"] = spec.ct
        if spec.accounts:
            entry["accounts"] = spec.accounts
        if spec.kind != "mqtt" or mqtt_url is not None:
            entry["bus"] = bus_of[spec.kind]
            if spec.address is not None:
                entry["address"] = spec.address
        if spec.kind.startswith("modbus"):
            entry["profile"] = MODBUS_PROFILE
        if spec.registers:
            entry["registers"] = spec.registers
        if spec.serial in fld.hosts:
            entry["dlms"] = {"host": fld.hosts[spec.serial]}
            if spec.serial in (RELAY_METER, CLOCK_METER):  # as the configurator: it may switch, shift the clock
                entry["dlms"].update(client=48, authentication="lls", password=CONFIGURATOR_PASSWORD)
        meters.append(entry)
    return {
        "database": {"url": "sqlite:///amr.sqlite"},
        "site": {"name": "АСКУЭ — демо", "timezone": SITE_TIMEZONE},
        "api": {"host": "127.0.0.1", "port": port},
        "export": {"sender_inn": "7700000001", "sender_name": "АО «Демо-Энергосбыт»", "area_inn": "7700000002",
                   "area_name": "Демо-РЭС"},
        "collector": {"buffer": "buffer.sqlite", "offline_after": 2, "write_interval": "200ms"},
        "quality": {"every": "1m"},
        "relay": {"check_every": "1s", "retry": "10s", "deadline": "10m"},
        "clock": {"threshold": "10s", "check_every": "10m"},
        "events": {"read_every": "30m"},
        "buses": buses,
        "meters": meters,
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)


def to_toml(data: dict[str, Any], header: str) -> str:
    """Enough TOML for the demo's configuration: tables of values and arrays of tables."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()] + [""]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
            lines.append("")
        else:
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
                lines.append("")
    return "\n".join(lines)


__all__ = ["Field", "Spec", "config_data", "lower", "seed_journals", "simulators", "specs", "to_toml"]
