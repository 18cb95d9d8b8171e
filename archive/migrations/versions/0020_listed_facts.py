"""evidence_items.listed_facts: an item's media facts without a document's extracted text,
kept by the database, for a case's evidence list

On PostgreSQL, adding a stored column rewrites evidence_items once, and the table stays
locked until it is done: on a large archive, upgrade in a maintenance window.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

from archive.sqljson import JsonWithout


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL computes a stored column for every row now and with every change of the
    # facts; SQLite cannot add a stored column to a table, so it computes it as it is read.
    stored = op.get_bind().dialect.name == "postgresql"
    facts = JsonWithout(sa.column('media_facts'), 'document', 'text')
    op.add_column('evidence_items', sa.Column('listed_facts', sa.JSON(), sa.Computed(facts, persisted=stored),
                                              nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('evidence_items', schema=None) as batch_op:
        batch_op.drop_column('listed_facts')
