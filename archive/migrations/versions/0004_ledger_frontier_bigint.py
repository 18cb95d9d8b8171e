"""ledger: Merkle frontier on ledger_lock; 64-bit sequence numbers and tree sizes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL until the next append computes it from the entries (archive.custody.ledger).
    op.add_column('ledger_lock', sa.Column('frontier', sa.JSON(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        # SQLite's INTEGER is already 64-bit; ALTER there would rebuild the table and
        # lose the ledger's append-only triggers.
        op.alter_column('ledger_entries', 'seq', type_=sa.BigInteger(), existing_nullable=False)
        op.alter_column('ledger_lock', 'size', type_=sa.BigInteger())
        op.alter_column('checkpoints', 'tree_size', type_=sa.BigInteger())


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('checkpoints', 'tree_size', type_=sa.Integer())
        op.alter_column('ledger_lock', 'size', type_=sa.Integer())
        op.alter_column('ledger_entries', 'seq', type_=sa.Integer(), existing_nullable=False)
    op.drop_column('ledger_lock', 'frontier')
