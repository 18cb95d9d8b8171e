"""records: case retention classes, legal holds, case outcomes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

import archive.models


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    aware = archive.models.AwareDateTime(timezone=True)
    op.create_table(
        'case_outcomes',
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('recorded_by', sa.String(length=36), nullable=False),
        sa.Column('recorded_at', aware, nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_outcomes_case_id_cases')),
        sa.ForeignKeyConstraint(['recorded_by'], ['users.id'], name=op.f('fk_case_outcomes_recorded_by_users')),
        sa.PrimaryKeyConstraint('case_id', name=op.f('pk_case_outcomes')),
    )
    op.create_table(
        'case_retention',
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('retention_class', sa.String(length=40), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('set_by', sa.String(length=36), nullable=False),
        sa.Column('set_at', aware, nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_retention_case_id_cases')),
        sa.ForeignKeyConstraint(['set_by'], ['users.id'], name=op.f('fk_case_retention_set_by_users')),
        sa.PrimaryKeyConstraint('case_id', name=op.f('pk_case_retention')),
    )
    op.create_table(
        'legal_holds',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('placed_by', sa.String(length=36), nullable=False),
        sa.Column('placed_at', aware, nullable=False),
        sa.Column('objects', sa.Integer(), nullable=False),
        sa.Column('released_by', sa.String(length=36), nullable=True),
        sa.Column('released_at', aware, nullable=True),
        sa.Column('release_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_legal_holds_case_id_cases')),
        sa.ForeignKeyConstraint(['placed_by'], ['users.id'], name=op.f('fk_legal_holds_placed_by_users')),
        sa.ForeignKeyConstraint(['released_by'], ['users.id'], name=op.f('fk_legal_holds_released_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_holds')),
    )
    op.create_index(op.f('ix_legal_holds_case_id'), 'legal_holds', ['case_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_legal_holds_case_id'), table_name='legal_holds')
    op.drop_table('legal_holds')
    op.drop_table('case_retention')
    op.drop_table('case_outcomes')
