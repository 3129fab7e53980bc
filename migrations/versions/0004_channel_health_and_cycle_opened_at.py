"""delivery channel health; when a cycle was opened; in-app links made site-relative

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:30:00

"""
from urllib.parse import urlsplit, urlunsplit

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _relative(link):
    # Notices used to store absolute URLs, which the inbox refused to follow (it only follows
    # site-relative paths, to be no open redirect): keep the path, query and fragment.
    parts = urlsplit(link)
    if not parts.scheme and not parts.netloc:
        return link
    return urlunsplit(('', '', parts.path or '/', parts.query, parts.fragment))


def upgrade():
    op.create_table(
        'channel_health',
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('failing_since', sa.DateTime(), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_probe_at', sa.DateTime(), nullable=True),
        sa.Column('next_probe_at', sa.DateTime(), nullable=True),
        sa.Column('last_ok_at', sa.DateTime(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint('channel', name=op.f('pk_channel_health')),
    )
    op.add_column('report_cycle', sa.Column('opened_at', sa.DateTime(), nullable=True))

    bind = op.get_bind()
    # The last "open" (or "reopen" of the cycle) recorded for each cycle.
    bind.execute(sa.text(
        "UPDATE report_cycle SET opened_at = (SELECT max(t.created_at) FROM transition_log t "
        "WHERE t.cycle_id = report_cycle.id AND t.contribution_id IS NULL AND t.event = 'open') "
        "WHERE state <> 'setup'"))
    rows = bind.execute(sa.text(
        "SELECT id, link FROM notification WHERE link LIKE 'http://%' OR link LIKE 'https://%'")).all()
    for row in rows:
        bind.execute(sa.text("UPDATE notification SET link = :link WHERE id = :id"),
                     {"id": row.id, "link": _relative(row.link)})


def downgrade():
    # Not a batch (copy-and-move) operation: on SQLite that drops report_cycle, and its ON DELETE
    # CASCADE would empty every table below it. SQLite 3.35+ drops a column in place.
    op.execute('ALTER TABLE report_cycle DROP COLUMN opened_at')
    op.drop_table('channel_health')
