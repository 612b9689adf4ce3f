"""MQTT in the registry."""

from __future__ import annotations

from amr.core.domain import Source
from amr.drivers.mqtt.settings import MqttBusSettings, MqttMeterSettings
from amr.drivers.spec import DriverSpec, any_address


def _url(url: str) -> None:
    if not url.startswith(("mqtt://", "tcp://")):
        raise ValueError(f'an mqtt bus needs url = "mqtt://host:1883"; got {url!r}')


MQTT = DriverSpec(
    kind="mqtt",
    labels={"ru": "MQTT", "en": "MQTT"},
    source=Source.MQTT,
    push=True,
    serial_line=False,
    url_schemes=("mqtt://", "tcp://"),
    capabilities=frozenset({"registers", "clock"}),  # a payload may carry the meter's time
    driver="amr.drivers.mqtt.driver:MqttDriver",
    simulator="amr.drivers.mqtt.simulate:MQTT",
    check_url=_url,
    check_address=any_address,  # an address is a name a topic or payload may give instead of the serial: any text
    bus_settings=MqttBusSettings,
    meter_settings=MqttMeterSettings,
)
