"""identity: a change of a token or a user is notified (channel evidence_auth), so the API's
token caches are emptied at once (archive.identity.token_cache)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""
from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # nothing is cached on SQLite
    op.execute(
        "CREATE FUNCTION evidence_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pg_notify('evidence_auth', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in ("api_tokens", "users", "units"):
        op.execute(
            f"CREATE TRIGGER {table}_auth_changed AFTER UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION evidence_auth_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("api_tokens", "users", "units"):
        op.execute(f"DROP TRIGGER {table}_auth_changed ON {table}")
    op.execute("DROP FUNCTION evidence_auth_changed()")
