"""corrections are signed (state correcting); cycles may share approved figures with liaisons

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 05:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

OLD_STATES = "('setup', 'collecting', 'compiling', 'signoff', 'signed', 'published')"
NEW_STATES = "('setup', 'collecting', 'compiling', 'signoff', 'signed', 'published', 'correcting')"


def _state_check(states):
    # SQLite cannot alter a constraint in place: batch mode copies the table with the new one.
    with op.batch_alter_table('report_cycle') as batch:
        batch.drop_constraint(op.f('ck_report_cycle_state'), type_='check')
        batch.create_check_constraint(op.f('ck_report_cycle_state'), sa.text(f"state IN {states}"))


def upgrade():
    with op.batch_alter_table('report_cycle') as batch:
        # Existing cycles keep today's behaviour: other units' figures stay hidden from liaisons.
        batch.add_column(sa.Column('share_approved_figures', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    _state_check(NEW_STATES)


def downgrade():
    # A cycle waiting for a signed correction goes back to its published state.
    op.execute("UPDATE report_cycle SET state = 'published' WHERE state = 'correcting'")
    _state_check(OLD_STATES)
    with op.batch_alter_table('report_cycle') as batch:
        batch.drop_column('share_approved_figures')
