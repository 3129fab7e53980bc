"""regions as tenants: region table; units, users and cycles belong to a region; unit codes unique per
region; oversight and system-administrator roles; roll-up indicators; publication deadline per cycle

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 14:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OLD_ROLES = "role IN ('admin', 'reviewer', 'liaison', 'unit_head', 'leader')"
NEW_ROLES = "role IN ('admin', 'reviewer', 'liaison', 'unit_head', 'leader', 'oversight', 'sysadmin')"
ROLLUP = "rollup IS NULL OR rollup IN ('sum', 'avg', 'count', 'min', 'max')"
# The region an existing single-district database becomes; an admin renames it and sets its code.
DEFAULT_CODE = '000000'
DEFAULT_NAME = '本地区'


def _existing_region_name(bind):
    # The district the database was used for: the name its latest cycle prints in its title.
    name = bind.execute(sa.text(
        'SELECT region FROM report_cycle ORDER BY year DESC, id DESC LIMIT 1')).scalar()
    return (name or DEFAULT_NAME)[:100]


def upgrade():
    op.create_table(
        'region',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('level', sa.String(length=10), nullable=False),
        sa.Column('parent_id', sa.Integer(), nullable=True),
        sa.Column('path', sa.String(length=400), nullable=False),
        sa.Column('sort_order', sa.Integer(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("level IN ('province', 'city', 'county')", name=op.f('ck_region_level')),
        sa.ForeignKeyConstraint(['parent_id'], ['region.id'], name=op.f('fk_region_parent_id_region')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_region')),
        sa.UniqueConstraint('code', name=op.f('uq_region_code')),
    )
    with op.batch_alter_table('region', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_region_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_region_path'), ['path'], unique=False)

    bind = op.get_bind()
    populated = any(bind.execute(sa.text(f'SELECT 1 FROM {table} LIMIT 1')).first()
                    for table in ('unit', '"user"', 'report_cycle'))
    region_id = None
    if populated:
        # Everything that exists belongs to the one district the installation served.
        bind.execute(sa.text(
            "INSERT INTO region (code, name, level, parent_id, path, sort_order, active, created_at) "
            "VALUES (:code, :name, 'county', NULL, '', 0, :active, CURRENT_TIMESTAMP)"),
            {'code': DEFAULT_CODE, 'name': _existing_region_name(bind), 'active': True})
        region_id = bind.execute(sa.text('SELECT id FROM region WHERE code = :code'),
                                 {'code': DEFAULT_CODE}).scalar_one()
        bind.execute(sa.text('UPDATE region SET path = :path WHERE id = :id'),
                     {'path': f'/{region_id}/', 'id': region_id})

    for table in ('unit', 'user', 'report_cycle'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('region_id', sa.Integer(), nullable=True))
        if region_id is not None:
            bind.execute(sa.text(f'UPDATE "{table}" SET region_id = :id'), {'id': region_id})

    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.alter_column('region_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint(op.f('uq_unit_code'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_unit_region_id_code'), ['region_id', 'code'])
        batch_op.create_foreign_key(batch_op.f('fk_unit_region_id_region'), 'region', ['region_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_unit_region_id'), ['region_id'], unique=False)
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('region_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(batch_op.f('fk_user_region_id_region'), 'region', ['region_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_user_region_id'), ['region_id'], unique=False)
    with op.batch_alter_table('report_cycle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('publish_deadline', sa.Date(), nullable=True))
        batch_op.alter_column('region_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(batch_op.f('fk_report_cycle_region_id_region'), 'region',
                                    ['region_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_report_cycle_region_id'), ['region_id'], unique=False)

    with op.batch_alter_table('user_role', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_role_role'), type_='check')
        batch_op.create_check_constraint(op.f('ck_user_role_role'), NEW_ROLES)
    with op.batch_alter_table('indicator', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rollup', sa.String(length=10), nullable=True))
        batch_op.create_check_constraint(op.f('ck_indicator_rollup'), ROLLUP)


def downgrade():
    bind = op.get_bind()
    if bind.execute(sa.text('SELECT count(*) FROM region')).scalar() > 1:
        raise RuntimeError('数据库中有多个地区，无法退回到只支持一个地区的版本。')
    if bind.execute(sa.text(
            "SELECT 1 FROM user_role WHERE role IN ('oversight', 'sysadmin') LIMIT 1")).first():
        raise RuntimeError('有用户担任督导或系统管理员，无法退回到没有这些角色的版本。')
    with op.batch_alter_table('indicator', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_indicator_rollup'), type_='check')
        batch_op.drop_column('rollup')
    with op.batch_alter_table('user_role', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_role_role'), type_='check')
        batch_op.create_check_constraint(op.f('ck_user_role_role'), OLD_ROLES)
    with op.batch_alter_table('report_cycle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_cycle_region_id'))
        batch_op.drop_constraint(op.f('fk_report_cycle_region_id_region'), type_='foreignkey')
        batch_op.drop_column('region_id')
        batch_op.drop_column('publish_deadline')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_region_id'))
        batch_op.drop_constraint(op.f('fk_user_region_id_region'), type_='foreignkey')
        batch_op.drop_column('region_id')
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_region_id'))
        batch_op.drop_constraint(op.f('uq_unit_region_id_code'), type_='unique')
        batch_op.drop_constraint(op.f('fk_unit_region_id_region'), type_='foreignkey')
        batch_op.create_unique_constraint('uq_unit_code', ['code'])
        batch_op.drop_column('region_id')
    with op.batch_alter_table('region', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_region_path'))
        batch_op.drop_index(batch_op.f('ix_region_parent_id'))
    op.drop_table('region')
