"""work: the durable record of background work, with leases

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from archive.models import AwareDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'work',
        sa.Column('task', sa.String(length=100), nullable=False),
        sa.Column('subject', sa.String(length=100), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('due_at', AwareDateTime(), nullable=False),
        sa.Column('lease_owner', sa.String(length=200), nullable=True),
        sa.Column('lease_until', AwareDateTime(), nullable=True),
        sa.Column('again', sa.Boolean(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', AwareDateTime(), nullable=False),
        sa.Column('updated_at', AwareDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('task', 'subject', name=op.f('pk_work')),
    )
    op.create_index(op.f('ix_work_due_at'), 'work', ['due_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_work_due_at'), table_name='work')
    op.drop_table('work')
