"""cases: a case number is unique within its unit (unit_id, case_number), no longer across
all units

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""
from alembic import op


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table (its constraints cannot be altered in place).
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint('uq_cases_case_number', type_='unique')
        batch_op.create_unique_constraint(op.f('uq_cases_unit_id_case_number'), ['unit_id', 'case_number'])


def downgrade() -> None:
    # Fails (an integrity error, nothing changed) while two units hold the same number:
    # the older schema cannot record them both.
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_cases_unit_id_case_number'), type_='unique')
        batch_op.create_unique_constraint('uq_cases_case_number', ['case_number'])
