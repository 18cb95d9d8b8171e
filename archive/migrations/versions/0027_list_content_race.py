"""evidence_list_changed (revisions 0024, 0025) on PostgreSQL: content arriving that another case
receives in a transaction committing at the same moment advances ``content`` too

The function asked, at the commit, whether another case holds the new item's content. Two
transactions receiving the same content into two cases, committing together, each asked
before the other's item was committed: neither saw the other, ``content`` stayed, and a list
read between the two commits was sent from the cache without the later item among its
duplicates until something else in its case changed. The question is now asked holding a
lock on the content (a transaction-scoped advisory lock on a digest of its SHA-256): the
second waits for the first to end, then sees its item (writers run at READ COMMITTED, so the
question after the wait is asked of what is committed by then) and advances ``content``.
Only transactions receiving the same content wait, and only for the end of the other's commit.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05
"""
import importlib.util
from pathlib import Path

from alembic import op


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION evidence_list_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
        -- Held to the transaction's end: another transaction receiving this content asks
        -- after this one has committed (its own statement, so a snapshot taken after the wait).
        PERFORM pg_advisory_xact_lock(hashtextextended('evidence content ' || NEW.sha256, 0));
        IF EXISTS (SELECT 1 FROM evidence_items WHERE sha256 = NEW.sha256 AND case_id <> NEW.case_id) THEN
            PERFORM set_config('evidence.lists_changed', seen || '|content|', true);
            INSERT INTO evidence_list_versions (key, n) VALUES ('content', 1)
                ON CONFLICT (key) DO UPDATE SET n = evidence_list_versions.n + 1;
        END IF;
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        path = Path(__file__).with_name("0024_evidence_list_versions.py")
        spec = importlib.util.spec_from_file_location("_revision_0024", path)
        previous = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(previous)
        op.execute(previous._FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
