"""figures version: a token per report cycle, changed by triggers whenever anything its figures are
computed from changes (pages cache their aggregates under it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:00:00

"""
from alembic import op
import sqlalchemy as sa

from fazhi_flow.models.figures_version import drop_trigger_statements, trigger_statements


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('figures_version',
    sa.Column('cycle_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.Column('txid', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('cycle_id', name=op.f('pk_figures_version'))
    )
    bind = op.get_bind()
    # Changing the trigger text later needs a migration of its own that drops and recreates them.
    for statement in trigger_statements(bind.dialect.name):
        op.execute(statement)
    token = "floor(random() * 9007199254740991)::bigint" if bind.dialect.name == "postgresql" else "random()"
    op.execute(f"INSERT INTO figures_version (cycle_id, token) SELECT id, {token} FROM report_cycle")


def downgrade():
    for statement in drop_trigger_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table('figures_version')
