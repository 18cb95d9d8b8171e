"""evidence_list_versions: a number per case that every change of the case's items or their
derived objects advances, and one (key ``content``) that an item arriving with content
another case already holds advances, so the API's cache of case evidence lists knows at
once that what it holds may be stale (api.list_cache)

On PostgreSQL the triggers are deferred to the commit and advance each number once a
transaction: a transaction holds the number's row only while it commits, so the workers
sealing, processing and receiving one case's items do not wait on each other for it.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

# PL/pgSQL: the case of the changed row (an item's, or a derived object's item's), advanced
# once a transaction (the cases already advanced are noted in a setting local to it); and
# ``content`` when an item arrives whose content another case holds (that case's list
# names it among its duplicates).
_FUNCTION = """
CREATE FUNCTION evidence_list_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed varchar;
    seen text := coalesce(current_setting('evidence.lists_changed', true), '');
BEGIN
    IF TG_TABLE_NAME = 'derived_objects' THEN
        SELECT case_id INTO changed FROM evidence_items
         WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.item_id ELSE NEW.item_id END;
    ELSE
        changed := CASE WHEN TG_OP = 'DELETE' THEN OLD.case_id ELSE NEW.case_id END;
    END IF;
    IF changed IS NOT NULL AND position('|' || changed || '|' IN seen) = 0 THEN
        seen := seen || '|' || changed || '|';
        PERFORM set_config('evidence.lists_changed', seen, true);
        INSERT INTO evidence_list_versions (key, n) VALUES (changed, 1)
            ON CONFLICT (key) DO UPDATE SET n = evidence_list_versions.n + 1;
    END IF;
    -- Nested: a condition naming NEW.sha256 cannot be planned for a derived object's row.
    IF TG_TABLE_NAME = 'evidence_items' AND TG_OP = 'INSERT' AND position('|content|' IN seen) = 0 THEN
        IF EXISTS (SELECT 1 FROM evidence_items WHERE sha256 = NEW.sha256 AND case_id <> NEW.case_id) THEN
            PERFORM set_config('evidence.lists_changed', seen || '|content|', true);
            INSERT INTO evidence_list_versions (key, n) VALUES ('content', 1)
                ON CONFLICT (key) DO UPDATE SET n = evidence_list_versions.n + 1;
        END IF;
    END IF;
    RETURN NULL;
END $$
"""

_BUMP = ("INSERT INTO evidence_list_versions (key, n) SELECT {key}, 1 WHERE {when} "
         "ON CONFLICT (key) DO UPDATE SET n = evidence_list_versions.n + 1;")
# SQLite: one writer at a time, so each change advances its numbers there and then.
_SQLITE = {
    ("evidence_items", "INSERT"): [
        _BUMP.format(key="NEW.case_id", when="1"),
        _BUMP.format(key="'content'", when=(
            "EXISTS (SELECT 1 FROM evidence_items WHERE sha256 = NEW.sha256 AND case_id <> NEW.case_id)"))],
    ("evidence_items", "UPDATE"): [_BUMP.format(key="NEW.case_id", when="1")],
    ("evidence_items", "DELETE"): [_BUMP.format(key="OLD.case_id", when="1")],
    ("derived_objects", "INSERT"): [_BUMP.format(
        key="(SELECT case_id FROM evidence_items WHERE id = NEW.item_id)", when="1")],
    ("derived_objects", "UPDATE"): [_BUMP.format(
        key="(SELECT case_id FROM evidence_items WHERE id = NEW.item_id)", when="1")],
    ("derived_objects", "DELETE"): [_BUMP.format(
        key="(SELECT case_id FROM evidence_items WHERE id = OLD.item_id)", when="1")],
}


def upgrade() -> None:
    op.create_table(
        'evidence_list_versions',
        sa.Column('key', sa.String(36), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_evidence_list_versions')),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        for table in ("evidence_items", "derived_objects"):
            op.execute(
                f"CREATE CONSTRAINT TRIGGER {table}_list_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION evidence_list_changed()"
            )
    else:
        for (table, event), statements in _SQLITE.items():
            op.execute(f"CREATE TRIGGER {table}_list_changed_{event.lower()} AFTER {event} ON {table} "
                       f"BEGIN {' '.join(statements)} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("evidence_items", "derived_objects"):
            op.execute(f"DROP TRIGGER {table}_list_changed ON {table}")
        op.execute("DROP FUNCTION evidence_list_changed()")
    else:
        for table, event in _SQLITE:
            op.execute(f"DROP TRIGGER {table}_list_changed_{event.lower()}")
    op.drop_table('evidence_list_versions')
