"""remote online inspections

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from archive.models import AwareDateTime


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'inspections',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('requested_by', sa.String(length=36), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('device_id', sa.String(length=200), nullable=False),
        sa.Column('seconds', sa.Integer(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('cookies', sa.JSON(), nullable=False),
        sa.Column('status', sa.Enum('queued', 'capturing', 'sealing', 'done', 'failed', name='inspection_status',
                                    native_enum=False, length=32), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('item_id', sa.String(length=36), nullable=True),
        sa.Column('record_item_id', sa.String(length=36), nullable=True),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.Column('created_at', AwareDateTime(), nullable=False),
        sa.Column('started_at', AwareDateTime(), nullable=True),
        sa.Column('finished_at', AwareDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_inspections_case_id_cases')),
        sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_inspections_requested_by_users')),
        sa.ForeignKeyConstraint(['item_id'], ['evidence_items.id'], name=op.f('fk_inspections_item_id_evidence_items')),
        sa.ForeignKeyConstraint(['record_item_id'], ['evidence_items.id'],
                                name=op.f('fk_inspections_record_item_id_evidence_items')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_inspections')),
    )
    with op.batch_alter_table('inspections') as batch:
        batch.create_index(batch.f('ix_inspections_case_id'), ['case_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inspections') as batch:
        batch.drop_index(batch.f('ix_inspections_case_id'))
    op.drop_table('inspections')
