"""Incotex Mercury 230/234: the driver (`driver`), its settings (`settings`), its simulator hook
(`simulate`); the spec is in `spec`."""
