"""meter registry fingerprint: a start with an unchanged meter registry reads ids and compares nothing

The fingerprint describes the meters, points, objects, accounts and ratios as the last sync
wrote them. Any other change to those tables (another process, a hand-made UPDATE) empties it
through triggers, so the next start compares everything again.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REGISTRY_TABLES = ("objects", "metering_points", "meters", "meter_accounts", "meter_ratios")


def upgrade() -> None:
    op.create_table("meter_registry", sa.Column("fingerprint", sa.String(length=64), primary_key=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION amr_meter_registry_changed() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN DELETE FROM meter_registry; RETURN NULL; END $$"
        )
        for table in REGISTRY_TABLES:
            op.execute(
                f"CREATE TRIGGER amr_{table}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION amr_meter_registry_changed()"
            )
        return
    for table in REGISTRY_TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER amr_{table}_{event.lower()} AFTER {event} ON {table} "
                "BEGIN DELETE FROM meter_registry; END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in REGISTRY_TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER amr_{table}_changed ON {table}")
        else:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER amr_{table}_{event}")
    if postgres:
        op.execute("DROP FUNCTION amr_meter_registry_changed()")
    op.drop_table("meter_registry")
