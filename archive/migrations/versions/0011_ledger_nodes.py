"""ledger: stored Merkle subtree hashes (ledger_nodes), backfilled from the entries

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from archive.custody.ledger import backfill_nodes


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ledger_nodes',
        sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_ledger_nodes')),
    )
    # Streamed from the entries (plain SQL, no ORM models): a large ledger never sits in memory.
    backfill_nodes(op.get_bind())


def downgrade() -> None:
    op.drop_table('ledger_nodes')
