"""evidence items: SHA-512 of the original, taken with SM3 after receipt

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for items hashed before this revision: exports compute it as they stream.
    op.add_column('evidence_items', sa.Column('sha512', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('evidence_items') as batch:
        batch.drop_column('sha512')
