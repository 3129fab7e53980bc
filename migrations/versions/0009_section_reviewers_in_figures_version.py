"""figures version also changes with a section's reviewers (the reviewer's queue is kept under it)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:30:00

"""
from alembic import op

from fazhi_flow.models.figures_version import (
    REVIEWERS_WATCHED, drop_outline_trigger_statements, outline_trigger_statements)


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    for statement in outline_trigger_statements(bind.dialect.name, REVIEWERS_WATCHED):
        op.execute(statement)
    # Queues kept under the old tokens were made without this trigger: start every cycle afresh.
    token = "floor(random() * 9007199254740991)::bigint" if bind.dialect.name == "postgresql" else "random()"
    op.execute(f"UPDATE figures_version SET token = {token}")


def downgrade():
    for statement in drop_outline_trigger_statements(op.get_bind().dialect.name, REVIEWERS_WATCHED):
        op.execute(statement)
