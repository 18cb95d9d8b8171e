"""evidence_list_versions: ``content`` also advances when an empty item's description (kind,
device, declared start, file name) changes, since an empty file is the same evidence as
another case's empty item only when they are described alike (archive.evidence.items
.same_evidence), so another case's list may name it, or stop naming it, among its duplicates

An item's arrival already advances ``content`` whenever another case holds its content (revision
0024): for an empty file that is more often than the rule needs, which is safe.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""
from alembic import op


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

_EMPTY = "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'"
_ALIKE = ("kind", "device_id", "recorded_start", "original_filename")
_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _ALIKE)

# PL/pgSQL, deferred to the commit and once a transaction, as revision 0024's. Named to fire
# after 0024's trigger on the same row (PostgreSQL runs them in the order of their names): every
# transaction then takes the case's number before ``content``, so two never wait on each other
# for them in opposite orders.
_FUNCTION = """
CREATE FUNCTION evidence_empty_item_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seen text := coalesce(current_setting('evidence.lists_changed', true), '');
BEGIN
    IF position('|content|' IN seen) = 0 THEN
        PERFORM set_config('evidence.lists_changed', seen || '|content|', true);
        INSERT INTO evidence_list_versions (key, n) VALUES ('content', 1)
            ON CONFLICT (key) DO UPDATE SET n = evidence_list_versions.n + 1;
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    when = f"NEW.sha256 = {_EMPTY} AND ({_CHANGED})"
    sqlite_when = when.replace("IS DISTINCT FROM", "IS NOT")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        op.execute(
            "CREATE CONSTRAINT TRIGGER evidence_items_list_changed_empty AFTER UPDATE ON evidence_items "
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION evidence_empty_item_changed()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER evidence_items_list_changed_empty AFTER UPDATE ON evidence_items WHEN {sqlite_when} "
            "BEGIN INSERT INTO evidence_list_versions (key, n) VALUES ('content', 1) "
            "ON CONFLICT (key) DO UPDATE SET n = evidence_list_versions.n + 1; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER evidence_items_list_changed_empty ON evidence_items")
        op.execute("DROP FUNCTION evidence_empty_item_changed()")
    else:
        op.execute("DROP TRIGGER evidence_items_list_changed_empty")
