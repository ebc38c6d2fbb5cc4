"""initial CRM schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 06:58:28.064738
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('first_seen', sa.DateTime(), nullable=True),
    sa.Column('last_seen', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('number')
    )
    op.create_table('calls',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('caller', sa.String(length=64), nullable=False),
    sa.Column('callee', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=False),
    sa.Column('end_reason', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('resolution', sa.String(length=16), nullable=False),
    sa.Column('tone_end', sa.String(length=16), nullable=False),
    sa.Column('tone_peak', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calls_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_tone_end'), ['tone_end'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('original', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_call_id'), ['call_id'], unique=False)

    op.create_table('follow_up_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('owner', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('due_hint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('follow_up_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_follow_up_tasks_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_follow_up_tasks_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_follow_up_tasks_status'), ['status'], unique=False)

    op.create_table('summaries',
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('producer', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('call_id')
    )
    op.create_table('transcripts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('party', sa.String(length=16), nullable=False),
    sa.Column('t_start', sa.Float(), nullable=False),
    sa.Column('t_end', sa.Float(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('original_text', sa.Text(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('words', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transcripts_call_id'), ['call_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transcripts_call_id'))

    op.drop_table('transcripts')
    op.drop_table('summaries')
    with op.batch_alter_table('follow_up_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_follow_up_tasks_status'))
        batch_op.drop_index(batch_op.f('ix_follow_up_tasks_contact_id'))
        batch_op.drop_index(batch_op.f('ix_follow_up_tasks_call_id'))

    op.drop_table('follow_up_tasks')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_call_id'))

    op.drop_table('events')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_tone_end'))
        batch_op.drop_index(batch_op.f('ix_calls_started_at'))
        batch_op.drop_index(batch_op.f('ix_calls_reason'))
        batch_op.drop_index(batch_op.f('ix_calls_contact_id'))

    op.drop_table('calls')
    op.drop_table('contacts')

