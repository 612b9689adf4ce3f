"""Who polls what: the leases and collectors as `amr collect --status` and the dispatcher's API show them."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from amr.config import Config
from amr.core.timetext import local_text
from amr.store import Store
from amr.store.leases import LeaseStatus, load_status


def sharing_note(config: Config, store: Store) -> str | None:
    """Why this site has no leases (SQLite, or ``leases = "off"``), or None when collectors share the buses."""
    if store.backend.dialect != "postgresql":
        return "SQLite: one collector polls every bus (leases need PostgreSQL)"
    if config.collector.leases == "off":
        return '[collector] leases = "off": each collector polls every bus'
    return None


def lease_status(config: Config, store: Store) -> dict[str, Any]:
    """The status as one JSON-ready object: ``sharing``, ``note``, ``now``, ``ttl_seconds``, ``leases``,
    ``collectors``."""
    note = sharing_note(config, store)
    ttl = config.collector.lease_ttl
    if note is not None:
        return {"sharing": False, "note": note, "now": None, "ttl_seconds": ttl.total_seconds(),
                "leases": [], "collectors": []}
    with store.engine.connect() as conn:
        status = load_status(conn, ttl)
    return as_dict(status, ttl)


def as_dict(status: LeaseStatus, ttl: timedelta) -> dict[str, Any]:
    """`status` as JSON-ready values (UTC ISO times)."""
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "sharing": True,
        "note": None,
        "now": iso(status.now),
        "ttl_seconds": ttl.total_seconds(),
        "leases": [
            {"lease": s.lease, "bus": s.bus, "meters": s.meters, "holder": s.owner if s.held else None,
             "since": iso(s.since) if s.held else None, "expires": iso(s.expires)}
            for s in status.leases
        ],
        "collectors": [
            {"id": c.id, "host": c.host, "pid": c.pid, "started_at": iso(c.started_at),
             "heartbeat_at": iso(c.heartbeat_at), "stopped_at": iso(c.stopped_at), "alive": c.alive,
             "leases": c.leases}
            for c in status.collectors
        ],
    }


def status_text(report: dict[str, Any], tz: tzinfo) -> list[str]:
    """The report as lines for a terminal, times in the site's zone."""
    if not report["sharing"]:
        return [str(report["note"])]
    now = datetime.fromisoformat(report["now"])

    def when(text: str | None) -> str:
        return local_text(datetime.fromisoformat(text).replace(microsecond=0), tz) if text else "-"

    def ago(text: str) -> str:
        return f"{(now - datetime.fromisoformat(text)).total_seconds():.1f} s ago"

    lines = [f"{'lease':<32} {'bus':<16} {'meters':>6}  {'holder':<32} since"]
    for lease in report["leases"]:
        holder = lease["holder"] or "(free: expired or given back)"
        head = f"{lease['lease']:<32} {lease['bus']:<16} {lease['meters']:>6}"
        lines.append(f"{head}  {holder:<32} {when(lease['since'])}")
    lines.append("")
    lines.append(f"{'collector':<32} {'state':<8} {'leases':>6}  last heartbeat")
    for c in report["collectors"]:
        state = "alive" if c["alive"] else ("stopped" if c["stopped_at"] else "dead")
        lines.append(f"{c['id']:<32} {state:<8} {c['leases']:>6}  {when(c['heartbeat_at'])} ({ago(c['heartbeat_at'])})")
    free = sum(1 for lease in report["leases"] if lease["holder"] is None)
    alive = sum(1 for c in report["collectors"] if c["alive"])
    lines.append(f"{len(report['leases'])} lease(s), {free} free; {alive} collector(s) alive; "
                 f"lease TTL {report['ttl_seconds']:g} s")
    return lines
