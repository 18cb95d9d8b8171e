"""The custody ledger's actor holds 255 characters: a user named with the most characters
user names allowed until now (200) is the actor ``user:NAME`` of 205, which the 200 of
``ledger_entries.actor`` and ``ledger_pending.actor`` refused on PostgreSQL, so every action by
that user failed. User names are now at most 195 characters; the width serves the users
named before.

Widened on PostgreSQL only: SQLite does not hold a text column to its length, and an ALTER
there would rebuild the tables and lose their append-only triggers (see revision 0004 and
:func:`archive.db.compare_type`). Widening a varchar rewrites nothing and changes no entry,
so no hash changes.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

TABLES = ("ledger_entries", "ledger_pending")


def upgrade() -> None:
    _actor(200, 255)


def downgrade() -> None:
    _actor(255, 200)


def _actor(was: int, width: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.alter_column(table, "actor", type_=sa.String(width), existing_type=sa.String(was), existing_nullable=False)
