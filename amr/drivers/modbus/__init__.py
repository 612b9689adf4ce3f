"""Modbus TCP and RTU: the driver (`driver`), its settings (`settings`), what its exception codes mean
(`errors`) and its simulator hook (`simulate`); the spec is in `spec`."""
