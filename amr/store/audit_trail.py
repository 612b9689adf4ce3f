"""Writing the audit trail (table ``audit_log``): who changed what, when and why."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from amr.store.models import audit_log_table


def audit(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Add one audit record in the caller's transaction."""
    conn.execute(
        insert(audit_log_table).values(
            at=at,
            actor=actor[:100],
            action=action[:50],
            subject=subject[:200],
            reason=reason,
            details=json.dumps(details or {}, ensure_ascii=False, default=str),
        )
    )
