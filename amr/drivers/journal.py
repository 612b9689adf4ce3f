"""The ``journal`` capability: a driver that reads the meter's event journals as normalised events.

A driver with ``journal`` in its spec's capabilities implements `JournalReader`; it turns each
record of the protocol's journals into `amr.core.events.MeterEvent` (code from the catalogue,
the raw record kept). Reading a journal twice gives the same events: the store keeps each once.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from amr.config import MeterConfig
from amr.core.events import MeterEvent


@runtime_checkable
class JournalReader(Protocol):
    """A poll driver that reads event journals (capability ``journal``)."""

    async def read_journal(self, meter: MeterConfig) -> list[MeterEvent]:
        """Every event the meter's journals hold now, oldest first."""
        ...


__all__ = ["JournalReader"]
