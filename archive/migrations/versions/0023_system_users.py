"""users.system: the archive's own identities (the command line's ``system-cli``), which
custody entries name but which cannot sign in, hold no token, are no administrator the
last-administrator rule counts, and are not listed among users

``evidence verify-case`` used to create ``system-cli`` as an ordinary active administrator of
a unit ``system``, with a token: it is marked here. Its tokens are refused from now on
(a system identity cannot sign in); they stay in the table, as every token does.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('system', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(sa.text(
        "UPDATE users SET system = :yes WHERE name = 'system-cli' "
        "AND unit_id IN (SELECT id FROM units WHERE name = 'system')"
    ).bindparams(yes=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('system')
