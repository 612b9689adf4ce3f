"""IEC 62056-21 mode C: the driver (`driver`), its settings (`settings`), its simulator hook (`simulate`);
the spec is in `spec`."""
