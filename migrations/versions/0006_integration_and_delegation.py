"""integration: personal access tokens, delegations (委托), countersign (会签) approvals, single sign-on
fields on the user, "X 代 Y" on the transition log and the audit trail, PDF rendered after publishing

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 17:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("scope IN ('read', 'write')", name=op.f('ck_api_token_scope')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_api_token_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('delegation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delegator_id', sa.Integer(), nullable=False),
    sa.Column('substitute_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('delegator_id <> substitute_id', name=op.f('ck_delegation_not_self')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_delegation_period')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_delegation_created_by_id_user')),
    sa.ForeignKeyConstraint(['delegator_id'], ['user.id'], name=op.f('fk_delegation_delegator_id_user'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['user.id'], name=op.f('fk_delegation_revoked_by_id_user')),
    sa.ForeignKeyConstraint(['substitute_id'], ['user.id'], name=op.f('fk_delegation_substitute_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegation'))
    )
    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegation_delegator_id'), ['delegator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delegation_ends_at'), ['ends_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_delegation_substitute_id'), ['substitute_id'], unique=False)

    op.create_table('contribution_approval',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contribution_id', sa.Integer(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user.id'], name=op.f('fk_contribution_approval_actor_id_user')),
    sa.ForeignKeyConstraint(['contribution_id'], ['contribution.id'], name=op.f('fk_contribution_approval_contribution_id_contribution'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['user.id'], name=op.f('fk_contribution_approval_reviewer_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contribution_approval')),
    sa.UniqueConstraint('contribution_id', 'revision_number', 'reviewer_id', name=op.f('uq_contribution_approval_contribution_id_revision_number_reviewer_id'))
    )
    with op.batch_alter_table('contribution_approval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contribution_approval_contribution_id'), ['contribution_id'], unique=False)

    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_audit_event_on_behalf_of_id_user'), 'user', ['on_behalf_of_id'], ['id'])

    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pdf_status', sa.String(length=10), nullable=False,
                                      server_default='done'))
        batch_op.add_column(sa.Column('pdf_completed_at', sa.DateTime(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_publication_pdf_status'),
                                         sa.text("pdf_status IN ('pending', 'done', 'failed', 'none')"))
    # Earlier publications rendered their PDF inside the publish request: done when stored, else none.
    # (Publication rows are immutable to the ORM; this is a one-off fill of a new column.)
    op.execute("UPDATE publication SET pdf_status = 'none' WHERE pdf IS NULL")
    op.execute("UPDATE publication SET pdf_completed_at = published_at WHERE pdf IS NOT NULL")

    with op.batch_alter_table('section', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_mode', sa.String(length=10), nullable=False,
                                      server_default='any'))
        batch_op.create_check_constraint(op.f('ck_section_review_mode'), sa.text("review_mode IN ('any', 'all')"))

    with op.batch_alter_table('transition_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_transition_log_on_behalf_of_id_user'), 'user', ['on_behalf_of_id'], ['id'])

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_login_disabled', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('sso_subject', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_user_sso_subject'), ['sso_subject'])



def downgrade():
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM publication WHERE pdf_status IN ('pending', 'failed') LIMIT 1")).first():
        raise RuntimeError('a publication still waits for its PDF: let the job finish before downgrading')
    if bind.execute(sa.text("SELECT 1 FROM section WHERE review_mode = 'all' LIMIT 1")).first():
        raise RuntimeError('sections require approval by all reviewers (会签): set them back to any one first')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_user_sso_subject'), type_='unique')
        batch_op.drop_column('sso_subject')
        batch_op.drop_column('password_login_disabled')

    with op.batch_alter_table('transition_log', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_transition_log_on_behalf_of_id_user'), type_='foreignkey')
        batch_op.drop_column('on_behalf_of_id')

    with op.batch_alter_table('section', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_section_review_mode'), type_='check')
        batch_op.drop_column('review_mode')

    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_publication_pdf_status'), type_='check')
        batch_op.drop_column('pdf_completed_at')
        batch_op.drop_column('pdf_status')

    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_audit_event_on_behalf_of_id_user'), type_='foreignkey')
        batch_op.drop_column('on_behalf_of_id')

    with op.batch_alter_table('contribution_approval', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contribution_approval_contribution_id'))

    op.drop_table('contribution_approval')
    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegation_substitute_id'))
        batch_op.drop_index(batch_op.f('ix_delegation_ends_at'))
        batch_op.drop_index(batch_op.f('ix_delegation_delegator_id'))

    op.drop_table('delegation')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_user_id'))

    op.drop_table('api_token')
