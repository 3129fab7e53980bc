"""scheduler heartbeat and job runs; attachment bytes in the database (optional storage)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 07:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'job_status',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=True),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('beat_at', sa.DateTime(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('ok', sa.Boolean(), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=True),
        sa.Column('summary', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_job_status')),
    )
    op.create_table(
        'attachment_blob',
        sa.Column('stored_name', sa.String(length=80), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('stored_name', name=op.f('pk_attachment_blob')),
    )


def downgrade():
    op.drop_table('attachment_blob')
    op.drop_table('job_status')
