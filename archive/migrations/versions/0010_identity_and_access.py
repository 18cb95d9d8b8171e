"""identity and access: API tokens, browser sessions, TOTP, recovery codes, SSO subject

Each user's bearer token moves from ``users.token_hash`` to a row of ``api_tokens``
(named "initial", no expiry), so every token issued before keeps working. The old
column stays (SQLite cannot drop a UNIQUE column of a table others reference) and is
overwritten with random values that are no token's hash.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
import secrets
import uuid
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

import archive.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    aware = archive.models.AwareDateTime(timezone=True)
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', aware, nullable=False),
        sa.Column('expires_at', aware, nullable=True),
        sa.Column('revoked_at', aware, nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    )
    op.create_index(op.f('ix_api_tokens_user_id'), 'api_tokens', ['user_id'], unique=False)
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', aware, nullable=False),
        sa.Column('expires_at', aware, nullable=False),
        sa.Column('second_factor_at', aware, nullable=True),
        sa.Column('ended_at', aware, nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_web_sessions_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_web_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_web_sessions_token_hash')),
    )
    op.create_index(op.f('ix_web_sessions_user_id'), 'web_sessions', ['user_id'], unique=False)
    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('used_at', aware, nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recovery_codes_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
    )
    op.create_index(op.f('ix_recovery_codes_user_id'), 'recovery_codes', ['user_id'], unique=False)
    op.add_column('users', sa.Column('totp_secret', sa.String(length=64), nullable=True))
    op.add_column('users', sa.Column('totp_enrolled_at', aware, nullable=True))
    op.add_column('users', sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.add_column('users', sa.Column('external_subject', sa.String(length=255), nullable=True))
    op.create_index('uq_users_external_subject', 'users', ['external_subject'], unique=True)

    conn = op.get_bind()
    users = sa.table('users', sa.column('id', sa.String), sa.column('token_hash', sa.String))
    tokens = sa.table(
        'api_tokens', sa.column('id', sa.String), sa.column('user_id', sa.String), sa.column('name', sa.String),
        sa.column('token_hash', sa.String), sa.column('created_at', aware),
    )
    now = datetime.now(timezone.utc)
    for user_id, token_hash in conn.execute(sa.select(users.c.id, users.c.token_hash)).all():
        conn.execute(tokens.insert().values(
            id=str(uuid.uuid4()), user_id=user_id, name="initial", token_hash=token_hash, created_at=now,
        ))
        conn.execute(users.update().where(users.c.id == user_id).values(token_hash=secrets.token_hex(32)))


def downgrade() -> None:
    # Tokens issued after the upgrade cannot be moved back (a user held one token before).
    op.drop_index('uq_users_external_subject', table_name='users')
    for column in ('external_subject', 'totp_last_step', 'totp_enrolled_at', 'totp_secret'):
        op.drop_column('users', column)
    op.drop_table('recovery_codes')
    op.drop_table('web_sessions')
    op.drop_table('api_tokens')
