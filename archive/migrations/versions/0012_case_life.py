"""the case's legal life: case stage, stage moves, handlers, stage documents, legal reviews, case archive records

Existing cases get the stage ``filed`` (``closed`` when their status is closed), and their
creator becomes their first handler.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

import archive.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

STAGE = sa.Enum(
    'filed', 'investigation', 'notice', 'hearing', 'legal_review', 'discussion', 'decision', 'service',
    'enforcement', 'closed', 'withdrawn', 'terminated', 'referred',
    name='case_stage', native_enum=False, length=32,
)


def upgrade() -> None:
    aware = archive.models.AwareDateTime(timezone=True)
    # A plain ADD COLUMN (no table rebuild: other tables reference cases).
    op.add_column('cases', sa.Column('stage', STAGE, nullable=False, server_default='filed'))
    op.execute("UPDATE cases SET stage = 'closed' WHERE status = 'closed'")
    op.create_table(
        'case_stage_moves',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('from_stage', STAGE, nullable=False),
        sa.Column('to_stage', STAGE, nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('actor_id', sa.String(length=36), nullable=True),
        sa.Column('review_id', sa.String(length=36), nullable=True),
        sa.Column('at', aware, nullable=False),
        sa.Column('ledger_seq', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_stage_moves_case_id_cases')),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_case_stage_moves_actor_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_stage_moves')),
    )
    op.create_index(op.f('ix_case_stage_moves_case_id'), 'case_stage_moves', ['case_id'], unique=False)
    op.create_table(
        'case_handlers',
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('added_by', sa.String(length=36), nullable=True),
        sa.Column('at', aware, nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_handlers_case_id_cases')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_case_handlers_user_id_users')),
        sa.ForeignKeyConstraint(['added_by'], ['users.id'], name=op.f('fk_case_handlers_added_by_users')),
        sa.PrimaryKeyConstraint('case_id', 'user_id', name=op.f('pk_case_handlers')),
    )
    op.create_index(op.f('ix_case_handlers_user_id'), 'case_handlers', ['user_id'], unique=False)
    op.execute("INSERT INTO case_handlers (case_id, user_id, added_by, at) "
               "SELECT id, created_by, NULL, created_at FROM cases")
    op.create_table(
        'legal_reviews',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('checkpoint', sa.Enum('filing', 'committee', 'approval', 'closing', name='review_checkpoint',
                                        native_enum=False, length=32), nullable=False),
        sa.Column('stage', STAGE, nullable=False),
        sa.Column('aspects', sa.JSON(), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('opinion', sa.Text(), nullable=False),
        sa.Column('discussion_minutes', sa.Text(), nullable=True),
        sa.Column('reviewer_id', sa.String(length=36), nullable=False),
        sa.Column('created_at', aware, nullable=False),
        sa.Column('record', sa.Text(), nullable=False),
        sa.Column('record_sha256', sa.String(length=64), nullable=False),
        sa.Column('cades', sa.LargeBinary(), nullable=False),
        sa.Column('sm2', sa.JSON(), nullable=False),
        sa.Column('timestamp_time', aware, nullable=True),
        sa.Column('ledger_seq', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_legal_reviews_case_id_cases')),
        sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_legal_reviews_reviewer_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_reviews')),
    )
    op.create_index(op.f('ix_legal_reviews_case_id'), 'legal_reviews', ['case_id'], unique=False)
    op.create_table(
        'case_archives',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('created_at', aware, nullable=False),
        sa.Column('created_by', sa.String(length=36), nullable=False),
        sa.Column('record', sa.LargeBinary(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('cades', sa.LargeBinary(), nullable=False),
        sa.Column('sm2', sa.JSON(), nullable=False),
        sa.Column('timestamp_time', aware, nullable=True),
        sa.Column('storage_prefix', sa.String(length=1000), nullable=False),
        sa.Column('ledger_first_seq', sa.BigInteger(), nullable=True),
        sa.Column('ledger_last_seq', sa.BigInteger(), nullable=True),
        sa.Column('checkpoint_tree_size', sa.BigInteger(), nullable=False),
        sa.Column('item_count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_archives_case_id_cases')),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_case_archives_created_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_archives')),
    )
    op.create_index(op.f('ix_case_archives_case_id'), 'case_archives', ['case_id'], unique=False)
    op.create_table(
        'stage_documents',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('case_id', sa.String(length=36), nullable=False),
        sa.Column('item_id', sa.String(length=36), nullable=False),
        sa.Column('stage', STAGE, nullable=False),
        sa.Column('role', sa.Enum(
            'filing_approval', 'notice', 'statement_record', 'hearing_record', 'discussion_record', 'decision',
            'service_proof', 'public_notice', 'enforcement_record', 'closing_report', 'other',
            name='stage_document_role', native_enum=False, length=32), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('linked_by', sa.String(length=36), nullable=False),
        sa.Column('at', aware, nullable=False),
        sa.Column('ledger_seq', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_stage_documents_case_id_cases')),
        sa.ForeignKeyConstraint(['item_id'], ['evidence_items.id'], name=op.f('fk_stage_documents_item_id_evidence_items')),
        sa.ForeignKeyConstraint(['linked_by'], ['users.id'], name=op.f('fk_stage_documents_linked_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_documents')),
        sa.UniqueConstraint('item_id', 'stage', 'role', name='stage_document_once'),
    )
    op.create_index(op.f('ix_stage_documents_case_id'), 'stage_documents', ['case_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_stage_documents_case_id'), table_name='stage_documents')
    op.drop_table('stage_documents')
    op.drop_index(op.f('ix_case_archives_case_id'), table_name='case_archives')
    op.drop_table('case_archives')
    op.drop_index(op.f('ix_legal_reviews_case_id'), table_name='legal_reviews')
    op.drop_table('legal_reviews')
    op.drop_index(op.f('ix_case_handlers_user_id'), table_name='case_handlers')
    op.drop_table('case_handlers')
    op.drop_index(op.f('ix_case_stage_moves_case_id'), table_name='case_stage_moves')
    op.drop_table('case_stage_moves')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('stage')
