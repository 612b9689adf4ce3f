"""Schema migrations (Alembic), run by `amr db upgrade -c FILE` and on first use of a store."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine, **attributes: object) -> AlembicConfig:
    """An Alembic configuration bound to `engine`'s connection at run time."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes.update(attributes)
    return cfg


def upgrade(engine: Engine, revision: str = "heads", **attributes: object) -> None:
    """Bring the schema to `revision`; `attributes` reach the migrations (e.g. timescale, timezone)."""
    with engine.begin() as conn:
        cfg = alembic_config(engine, connection=conn, **attributes)
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision(s) the database is at ("0003+0004" when branches meet), or None when empty."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return "+".join(sorted(heads)) or None


def head_revision() -> str:
    """The newest revision(s) this package knows."""
    return "+".join(sorted(ScriptDirectory(str(MIGRATIONS)).get_heads()))
