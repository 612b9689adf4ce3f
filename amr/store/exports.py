"""The export log: every export file made gets the next number (the 80020 message number)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert

from amr.store.auth_models import export_log_table
from amr.store.store import Store, translate_errors


def next_export_number(store: Store, kind: str, period: str, actor: str, now: datetime) -> int:
    """Record an export and return its number (increasing across every export)."""
    with translate_errors(), store.engine.begin() as conn:
        created = conn.execute(
            insert(export_log_table)
            .values(kind=kind, period=period, created_by=actor[:100], created_at=now)
            .returning(export_log_table.c.id)
        ).scalar_one()
    return int(created)
