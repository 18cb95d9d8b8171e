"""identity: a version number that every change of a token, a user or a unit advances, so the
API's token caches know at once that what they hold may be stale
(archive.identity.token_cache)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

TABLES = ("api_tokens", "users", "units")


def upgrade() -> None:
    op.create_table(
        'auth_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_version')),
    )
    op.execute("INSERT INTO auth_version (id, n) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION evidence_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN UPDATE auth_version SET n = n + 1 WHERE id = 1; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_auth_changed AFTER UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION evidence_auth_changed()"
            )
    else:
        for table in TABLES:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_auth_changed_{event.lower()} AFTER {event} ON {table} "
                    "BEGIN UPDATE auth_version SET n = n + 1 WHERE id = 1; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_auth_changed ON {table}")
        op.execute("DROP FUNCTION evidence_auth_changed()")
    else:
        for table in TABLES:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER {table}_auth_changed_{event}")
    op.drop_table('auth_version')
