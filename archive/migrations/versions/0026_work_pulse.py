"""work_pulse: when a worker last took up background work, so /healthz counts work as stuck
only when nothing is taken up (or it waited far too long), not while a backlog drains

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

from archive.models import AwareDateTime

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'work_pulse',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('taken_at', AwareDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_work_pulse')),
    )
    op.bulk_insert(table, [{"id": 1, "taken_at": None}])


def downgrade() -> None:
    op.drop_table('work_pulse')
