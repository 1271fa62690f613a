"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=256), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('session_id', sa.String(length=256), nullable=True),
    sa.Column('stream_id', sa.String(length=256), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=256), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('ts', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.String(length=256), nullable=True),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('image_ref', sa.String(length=1024), nullable=True),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('tenant_id', 'user_id', 'client_id', name=op.f('uq_events_tenant_id_user_id_client_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_scope_seq', ['tenant_id', 'user_id', 'seq'], unique=False)
        batch_op.create_index('ix_events_scope_session', ['tenant_id', 'user_id', 'session_id', 'seq'], unique=False)
        batch_op.create_index('ix_events_scope_stream', ['tenant_id', 'user_id', 'stream_id', 'ts'], unique=False)

    op.create_table('index_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=1024), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_index_meta'))
    )
    op.create_table('units',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=256), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('session_id', sa.String(length=256), nullable=True),
    sa.Column('stream_id', sa.String(length=256), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('start_ts', sa.DateTime(), nullable=False),
    sa.Column('end_ts', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('index_state', sa.String(length=16), nullable=False),
    sa.Column('embedder', sa.String(length=256), nullable=True),
    sa.Column('embedder_version', sa.String(length=64), nullable=True),
    sa.Column('compressor', sa.String(length=256), nullable=True),
    sa.Column('compressor_version', sa.String(length=64), nullable=True),
    sa.Column('segmenter', sa.String(length=256), nullable=True),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.Column('importance', sa.Float(), nullable=False),
    sa.Column('strength', sa.Float(), nullable=False),
    sa.Column('access_count', sa.Integer(), nullable=False),
    sa.Column('last_accessed', sa.DateTime(), nullable=True),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.Column('valid_from', sa.DateTime(), nullable=True),
    sa.Column('valid_to', sa.DateTime(), nullable=True),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units'))
    )
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.create_index('ix_units_index_state', ['index_state'], unique=False)
        batch_op.create_index('ix_units_scope_level', ['tenant_id', 'user_id', 'level', 'status'], unique=False)
        batch_op.create_index('ix_units_scope_session', ['tenant_id', 'user_id', 'session_id', 'status'], unique=False)

    op.create_table('unit_links',
    sa.Column('parent_id', sa.String(length=36), nullable=False),
    sa.Column('child_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['units.id'], name=op.f('fk_unit_links_child_id_units'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['units.id'], name=op.f('fk_unit_links_parent_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('parent_id', 'child_id', name=op.f('pk_unit_links'))
    )
    with op.batch_alter_table('unit_links', schema=None) as batch_op:
        batch_op.create_index('ix_unit_links_child', ['child_id'], unique=False)

    op.create_table('unit_sources',
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_unit_sources_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_unit_sources_unit_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('unit_id', 'event_id', name=op.f('pk_unit_sources'))
    )
    with op.batch_alter_table('unit_sources', schema=None) as batch_op:
        batch_op.create_index('ix_unit_sources_event', ['event_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('unit_sources', schema=None) as batch_op:
        batch_op.drop_index('ix_unit_sources_event')

    op.drop_table('unit_sources')
    with op.batch_alter_table('unit_links', schema=None) as batch_op:
        batch_op.drop_index('ix_unit_links_child')

    op.drop_table('unit_links')
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_index('ix_units_scope_session')
        batch_op.drop_index('ix_units_scope_level')
        batch_op.drop_index('ix_units_index_state')

    op.drop_table('units')
    op.drop_table('index_meta')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_scope_stream')
        batch_op.drop_index('ix_events_scope_session')
        batch_op.drop_index('ix_events_scope_seq')

    op.drop_table('events')
