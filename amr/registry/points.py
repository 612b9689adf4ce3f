"""The registry's metering points a page at a time (the admin API's list): each with its object, its
meter (the last installed, not removed) and how many meters it has had, by code with keyset paging so the last page
of 100,000 points costs what the first does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from amr.store import Store
from amr.store.store import translate_errors

# the page of points first, then their meters: no aggregate over every point of the registry;
# the point's meter is the one not removed from it (by a replacement) nor taken out of the registry
_PAGE = """
WITH page AS (
    SELECT p.id, p.code, o.name FROM metering_points p JOIN objects o ON o.id = p.object_id
    {where}
    ORDER BY p.code LIMIT :limit
)
SELECT page.code, page.name,
       MAX(CASE WHEN m.removed IS NULL AND m.retired_at IS NULL THEN m.serial END),
       COUNT(m.id)
FROM page LEFT JOIN meters m ON m.point_id = page.id
GROUP BY page.code, page.name
ORDER BY page.code
"""


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page_of_points(
    store: Store, search: str | None, after: str | None, limit: int, object_name: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Points by code, `limit` after code `after`, those of object `object_name` if given, those whose
    code or object holds `search` (any case); and the code to continue after (None on the last page)."""
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": limit + 1}
    if after is not None:
        conditions.append("p.code > :after")
        params["after"] = after
    if object_name is not None:
        conditions.append("o.name = :object")
        params["object"] = object_name
    sqlite = store.engine.dialect.name == "sqlite"
    if search:
        lower = "amr_lower" if sqlite else "lower"  # SQLite's lower() knows ASCII letters only
        conditions.append(f"({lower}(p.code) LIKE :needle ESCAPE '\\' OR {lower}(o.name) LIKE :needle ESCAPE '\\')")
        params["needle"] = f"%{_like(search.lower())}%"
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with translate_errors(), store.engine.connect() as conn:
        if sqlite and search:
            raw: Any = conn.connection.driver_connection
            raw.create_function("amr_lower", 1, lambda value: None if value is None else str(value).lower(),
                                deterministic=True)
        rows = conn.execute(text(_PAGE.format(where=where)), params).all()
    points = [{"code": code, "object": name, "meter": serving, "meters": int(count)}
              for code, name, serving, count in rows[:limit]]
    return points, (points[-1]["code"] if len(rows) > limit else None)
