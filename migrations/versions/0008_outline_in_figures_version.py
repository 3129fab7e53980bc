"""figures version also changes with the outline, the units and the cycle's shown fields (the
progress dashboard is kept under it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 03:00:00

"""
from alembic import op

from fazhi_flow.models.figures_version import drop_outline_trigger_statements, outline_trigger_statements


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    for statement in outline_trigger_statements(bind.dialect.name):
        op.execute(statement)
    # Pages cached under the old tokens were made without these triggers: start every cycle afresh.
    token = "floor(random() * 9007199254740991)::bigint" if bind.dialect.name == "postgresql" else "random()"
    op.execute(f"UPDATE figures_version SET token = {token}")


def downgrade():
    for statement in drop_outline_trigger_statements(op.get_bind().dialect.name):
        op.execute(statement)
