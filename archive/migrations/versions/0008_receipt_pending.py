"""verification receipts: the list of what an incomplete verification awaits

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL on receipts written before this revision (they were only passed or failed).
    op.add_column('verification_receipts', sa.Column('pending', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('verification_receipts') as batch:
        batch.drop_column('pending')
