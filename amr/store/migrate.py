"""Schema migrations (Alembic), run by `amr db upgrade -c FILE` and on first use of a store.

A database already at the newest revision is recognised with one query, without
importing Alembic (a quarter of a second at every start of a command).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x616D_725F_7363_6865  # "amr_sche": the advisory lock key of schema upgrades
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def alembic_config(engine: Engine, **attributes: object) -> AlembicConfig:
    """An Alembic configuration bound to `engine`'s connection at run time."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes.update(attributes)
    return cfg


def _file_heads() -> frozenset[str] | None:
    """The newest revision(s) read from the migration files; None when a file is not of the usual form."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        own = _QUOTED.findall(found.get("revision", ""))
        if len(own) != 1 or "down_revision" not in found:
            return None
        revisions.add(own[0])
        parents.update(_QUOTED.findall(found["down_revision"]))
    heads = frozenset(revisions - parents)
    return heads or None


def _at_heads(engine: Engine) -> bool:
    heads = _file_heads()
    if heads is None:
        return False
    try:
        with engine.connect() as conn:
            current = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except SQLAlchemyError:
        return False  # no schema yet (or no answer): Alembic decides and reports
    return current == heads


def upgrade(engine: Engine, revision: str = "heads", **attributes: object) -> None:
    """Bring the schema to `revision`; `attributes` reach the migrations (e.g. timescale, timezone)."""
    if revision == "heads" and _at_heads(engine):
        return
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # processes starting together on an empty database take turns
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg = alembic_config(engine, connection=conn, **attributes)
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision(s) the database is at ("0003+0004" when branches meet), or None when empty."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return "+".join(sorted(heads)) or None


def head_revision() -> str:
    """The newest revision(s) this package knows."""
    from alembic.script import ScriptDirectory

    return "+".join(sorted(ScriptDirectory(str(MIGRATIONS)).get_heads()))
