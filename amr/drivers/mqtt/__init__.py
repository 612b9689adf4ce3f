"""MQTT push: the driver (`driver`), payload decoding (`payloads`), its settings (`settings`) and its
simulator hook (`simulate`); the spec is in `spec`."""
