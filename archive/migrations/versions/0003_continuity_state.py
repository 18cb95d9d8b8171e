"""continuity analysis state per case (requested / analysed counters)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import archive.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('continuity_state',
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('requested', sa.Integer(), nullable=False),
    sa.Column('analysed', sa.Integer(), nullable=False),
    sa.Column('analysed_at', archive.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_continuity_state_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_continuity_state'))
    )


def downgrade() -> None:
    op.drop_table('continuity_state')
