"""ledger: entries committed with their action and sequenced in batches (ledger_pending)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ledger_pending',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('recorded_at', sa.String(length=40), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=True),
        sa.Column('item_id', sa.String(length=36), nullable=True),
        sa.Column('action', sa.String(length=60), nullable=False),
        sa.Column('details', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_pending')),
    )
    # A waiting entry can be sequenced (and then deleted) but never edited.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER ledger_pending_unchanged BEFORE UPDATE ON ledger_pending "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER ledger_pending_no_update BEFORE UPDATE ON ledger_pending "
            "BEGIN SELECT RAISE(ABORT, 'custody ledger is append-only'); END"
        )


def downgrade() -> None:
    op.drop_table('ledger_pending')
