"""exports: court requests by case number (court_requests)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from archive.models import AwareDateTime


revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'court_requests',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('case_number', sa.String(length=100), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=True),
        sa.Column('court_reference', sa.String(length=200), nullable=False),
        sa.Column('legal_basis', sa.Text(), nullable=False),
        sa.Column('requested_by', sa.String(length=36), nullable=False),
        sa.Column('created_at', AwareDateTime(), nullable=False),
        sa.Column('status', sa.Enum('pending', 'fulfilled', 'declined', name='court_request_status',
                                    native_enum=False, length=32), nullable=False),
        sa.Column('export_id', sa.String(length=36), nullable=True),
        sa.Column('decided_by', sa.String(length=36), nullable=True),
        sa.Column('decided_at', AwareDateTime(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_court_requests_case_id_cases')),
        sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_court_requests_decided_by_users')),
        sa.ForeignKeyConstraint(['export_id'], ['exports.id'], name=op.f('fk_court_requests_export_id_exports')),
        sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_court_requests_requested_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_court_requests')),
    )
    op.create_index(op.f('ix_court_requests_case_id'), 'court_requests', ['case_id'], unique=False)
    op.create_index(op.f('ix_court_requests_requested_by'), 'court_requests', ['requested_by'], unique=False)


def downgrade() -> None:
    op.drop_table('court_requests')
