"""The keys of an MQTT bus and meter (light: no driver, no paho)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from amr.config import BusSettings, MeterSettings


class MqttBusSettings(BusSettings):
    """An MQTT broker: what to subscribe to, how payloads are read, and how to sign in."""

    topics: list[str] = Field(default_factory=list)
    payload: Literal["amr", "mapping", "tasmota-sml"] = "amr"
    mapping: dict[str, str] = Field(default_factory=dict)
    client_id: str = ""
    shared_group: str = ""
    qos: Literal[0, 1, 2] = 1
    username: str = ""
    password: str = Field("", repr=False)

    @model_validator(mode="after")
    def _has_topics(self) -> MqttBusSettings:
        if not self.topics:
            raise ValueError('an mqtt bus needs topics = ["meters/+/energy"]')
        return self


class MqttMeterSettings(MeterSettings):
    """An MQTT meter has no keys of its own: a payload or topic names it by serial or ``address``."""
