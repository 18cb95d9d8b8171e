"""enforcement actions closed by the signing of their record (an interview's window ends then)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enforcement_actions') as batch:
        batch.add_column(sa.Column('record_item_id', sa.String(length=36), nullable=True))
        batch.create_foreign_key(op.f('fk_enforcement_actions_record_item_id_evidence_items'), 'evidence_items',
                                 ['record_item_id'], ['id'])
        # An action closed by its record's signing has no end until the record is signed.
        batch.alter_column('window_end', existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.drop_constraint(op.f('ck_enforcement_actions_window_order'), type_='check')
        batch.create_check_constraint(op.f('ck_enforcement_actions_window_order'),
                                      'window_end IS NULL OR window_end > window_start')


def downgrade() -> None:
    with op.batch_alter_table('enforcement_actions') as batch:
        batch.drop_constraint(op.f('ck_enforcement_actions_window_order'), type_='check')
        batch.create_check_constraint(op.f('ck_enforcement_actions_window_order'), 'window_end > window_start')
        batch.alter_column('window_end', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.drop_constraint(op.f('fk_enforcement_actions_record_item_id_evidence_items'), type_='foreignkey')
        batch.drop_column('record_item_id')
