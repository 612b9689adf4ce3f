"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 12:39:36.436043
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import amr.store.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', amr.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('objects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('readings',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('tariff', sa.SmallInteger(), nullable=False),
    sa.Column('ts', amr.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('a_plus', sa.BigInteger(), nullable=True),
    sa.Column('a_minus', sa.BigInteger(), nullable=True),
    sa.Column('r_plus', sa.BigInteger(), nullable=True),
    sa.Column('r_minus', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('flags', sa.SmallInteger(), nullable=False),
    sa.Column('received_at', amr.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('meter_id', 'tariff', 'ts')
    )
    op.create_table('rejected_readings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('meter_serial', sa.String(length=200), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=True),
    sa.Column('ts', amr.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tariff', sa.SmallInteger(), nullable=True),
    sa.Column('a_plus', sa.BigInteger(), nullable=True),
    sa.Column('a_minus', sa.BigInteger(), nullable=True),
    sa.Column('r_plus', sa.BigInteger(), nullable=True),
    sa.Column('r_minus', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('reasons', sa.String(length=300), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('received_at', amr.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolved_by', sa.String(length=100), nullable=True),
    sa.Column('resolved_at', amr.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('fingerprint')
    )
    with op.batch_alter_table('rejected_readings', schema=None) as batch_op:
        batch_op.create_index('ix_rejected_status_received', ['status', 'received_at'], unique=False)

    op.create_table('metering_points',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['object_id'], ['objects.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('meters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('point_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('digits', sa.SmallInteger(), nullable=False),
    sa.Column('decimals', sa.SmallInteger(), nullable=False),
    sa.Column('tariffs', sa.SmallInteger(), nullable=False),
    sa.Column('max_power_kw', sa.Numeric(precision=14, scale=3), nullable=True),
    sa.Column('installed', amr.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('removed', amr.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['point_id'], ['metering_points.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('serial')
    )
    op.create_table('meter_accounts',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], ),
    sa.PrimaryKeyConstraint('meter_id', 'account')
    )
    with op.batch_alter_table('meter_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meter_accounts_account'), ['account'], unique=False)

    op.create_table('meter_ratios',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.SmallInteger(), nullable=False),
    sa.Column('since', amr.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ct', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.Column('vt', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], ),
    sa.PrimaryKeyConstraint('meter_id', 'version')
    )


def downgrade() -> None:
    op.drop_table('meter_ratios')
    with op.batch_alter_table('meter_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meter_accounts_account'))

    op.drop_table('meter_accounts')
    op.drop_table('meters')
    op.drop_table('metering_points')
    with op.batch_alter_table('rejected_readings', schema=None) as batch_op:
        batch_op.drop_index('ix_rejected_status_received')

    op.drop_table('rejected_readings')
    op.drop_table('readings')
    op.drop_table('objects')
    op.drop_table('audit_log')
