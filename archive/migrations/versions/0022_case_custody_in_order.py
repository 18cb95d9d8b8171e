"""ledger_entries of a case in the ledger's order: one index on (case_id, seq), in place of
the one on case_id alone

The case page shows a case's newest 200 custody entries, and the API pages a case's entries
by sequence number. With an index on case_id alone, each read took every entry of the case
and sorted them: 36 ms of PostgreSQL's time for the case page's 200 of a case with 100,000
entries, and every evidence read adds an entry. The index gives them in order, from where
the reader is. Its first column serves every lookup by case as the old index did.

Building it holds appends to the ledger for as long as it takes (seconds for a million
entries): upgrade a large archive in a maintenance window.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""
from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_ledger_entries_case_seq', 'ledger_entries', ['case_id', 'seq'])
    op.drop_index('ix_ledger_entries_case_id', table_name='ledger_entries')


def downgrade() -> None:
    op.create_index('ix_ledger_entries_case_id', 'ledger_entries', ['case_id'])
    op.drop_index('ix_ledger_entries_case_seq', table_name='ledger_entries')
