"""delivery channel health; when a cycle was opened (from the next open on); in-app links made site-relative

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

    # opened_at stays empty for cycles already collecting: the reminder policy keys its overdue and
    # escalation series on the open day when it is known, so filling it in here would start those
    # series again and resend what was already sent. It is set from the next open or reopen on.
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, link FROM notification WHERE link LIKE 'http://%' OR link LIKE 'https://%'")).all()
    if rows:
        bind.execute(sa.text("UPDATE notification SET link = :link WHERE id = :id"),
                     [{"id": row.id, "link": _relative(row.link)} for row in rows])


def downgrade():
    # Not a batch (copy-and-move) operation: on SQLite that drops report_cycle, and its ON DELETE
    # CASCADE would empty every table below it. SQLite 3.35+ drops a column in place.
    op.execute('ALTER TABLE report_cycle DROP COLUMN opened_at')
    op.drop_table('channel_health')
