"""Alembic environment: migrations run on a connection handed in by `amr.store.migrate`."""

from __future__ import annotations

from alembic import context

from amr.store.models import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `amr db upgrade -c FILE`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
