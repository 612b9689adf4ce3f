"""The registry's lists a page at a time (the admin API and the dashboard's registry screen): metering points,
objects and buses, each by its key with keyset paging (`after` the last key of the page before), so that the last
page of 100,000 costs what the first does, and searched in any case on the server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, text

from amr.registry.entries import Entry
from amr.store import Store
from amr.store.store import translate_errors

# the page first, then what is counted for it: no aggregate over every row of the registry
_POINTS = """
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
# the point's meter is the one not removed from it (by a replacement) nor taken out of the registry

_OBJECTS = """
WITH page AS (SELECT o.id, o.name FROM objects o {where} ORDER BY o.name LIMIT :limit)
SELECT page.name, COUNT(DISTINCT p.id), COUNT(m.id)
FROM page
LEFT JOIN metering_points p ON p.object_id = page.id
LEFT JOIN meters m ON m.point_id = p.id AND m.retired_at IS NULL
GROUP BY page.name
ORDER BY page.name
"""

_BUS_NAMES = "SELECT b.name FROM buses b {where} ORDER BY b.name LIMIT :limit"


def escape_like(value: str) -> str:
    """`value` taken literally by LIKE ... ESCAPE '\\': its wildcards and escape character escaped."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def lower_function(sqlite: bool) -> str:
    """The SQL function that lowers text in any script: SQLite's lower() knows ASCII letters only, so there it is
    ``amr_lower``, which `unicode_lower` registers on the connection."""
    return "amr_lower" if sqlite else "lower"


def unicode_lower(conn: Connection) -> None:
    """Register ``amr_lower`` (Python's str.lower) on `conn` when its database is SQLite."""
    if conn.dialect.name == "sqlite":
        raw: Any = conn.connection.driver_connection
        raw.create_function("amr_lower", 1, lambda value: None if value is None else str(value).lower(),
                            deterministic=True)


class _Filter:
    """The WHERE of one page: conditions and their parameters, with a search in any case on both backends."""

    def __init__(self, store: Store, limit: int) -> None:
        self.sqlite = store.engine.dialect.name == "sqlite"
        self.conditions: list[str] = []
        self.params: dict[str, Any] = {"limit": limit + 1}  # one more: is there a next page?

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    def search(self, text_value: str | None, *columns: str) -> None:
        if not text_value:
            return
        lower = lower_function(self.sqlite)
        either = " OR ".join(f"{lower}({column}) LIKE :needle ESCAPE '\\'" for column in columns)
        self.add(f"({either})", needle=f"%{escape_like(text_value.lower())}%")

    @property
    def where(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""

    def run(self, store: Store, query: str, also: Callable[[Connection, Sequence[Any]], Any] | None = None) -> Any:
        with translate_errors(), store.engine.connect() as conn:
            if "needle" in self.params:
                unicode_lower(conn)
            rows = conn.execute(text(query.format(where=self.where)), self.params).all()
            return rows if also is None else also(conn, rows)


def _paged(items: list[Any], limit: int, key: Callable[[Any], str]) -> tuple[list[Any], str | None]:
    return items[:limit], (key(items[limit - 1]) if len(items) > limit else None)


def page_of_points(
    store: Store, search: str | None, after: str | None, limit: int, object_name: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Points by code, `limit` after code `after`, those of object `object_name` if given, those whose code or
    object holds `search` (any case); each with its object, its meter (None when none) and how many meters it has
    had; and the code to continue after (None on the last page)."""
    page = _Filter(store, limit)
    if after is not None:
        page.add("p.code > :after", after=after)
    if object_name is not None:
        page.add("o.name = :object", object=object_name)
    page.search(search, "p.code", "o.name")
    points = [{"code": code, "object": name, "meter": serving, "meters": int(count)}
              for code, name, serving, count in page.run(store, _POINTS)]
    return _paged(points, limit, lambda point: str(point["code"]))


def page_of_objects(
    store: Store, search: str | None, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Objects by name, `limit` after name `after`, those whose name holds `search` (any case); each with how many
    metering points and meters in the registry it has; and the name to continue after (None on the last page)."""
    page = _Filter(store, limit)
    if after is not None:
        page.add("o.name > :after", after=after)
    page.search(search, "o.name")
    objects = [{"name": name, "points": int(points), "meters": int(meters)}
               for name, points, meters in page.run(store, _OBJECTS)]
    return _paged(objects, limit, lambda item: str(item["name"]))


BusEntries = Callable[[Connection, list[str]], list[Entry]]
"""The entries of the buses of these names, in their order (secrets hidden)."""


def page_of_buses(
    store: Store, search: str | None, after: str | None, limit: int, entries: BusEntries
) -> tuple[list[Entry], str | None]:
    """Buses by name, `limit` after name `after`, those whose name or URL holds `search` (any case), as `entries`
    gives them for their names (secrets hidden); and the name to continue after (None on the last page)."""
    page = _Filter(store, limit)
    if after is not None:
        page.add("b.name > :after", after=after)
    page.search(search, "b.name", "b.url")
    buses: list[Entry] = page.run(store, _BUS_NAMES, lambda conn, rows: entries(conn, [name for (name,) in rows]))
    return _paged(buses, limit, lambda bus: str(bus["name"]))


__all__ = ["escape_like", "lower_function", "page_of_buses", "page_of_objects", "page_of_points", "unicode_lower"]
