"""QA scorecards, overrides, KPI columns, call recordings, follow-up due dates

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 06:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agent_id', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('queue', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('recording', sa.String(length=1024), nullable=True))
        batch_op.create_index(batch_op.f('ix_calls_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_queue'), ['queue'], unique=False)
    with op.batch_alter_table('follow_up_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agent_id', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('due_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('t', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('done_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_follow_up_tasks_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_follow_up_tasks_due_at'), ['due_at'], unique=False)
    op.create_table('qa_scores',
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('form_id', sa.String(length=64), nullable=False),
    sa.Column('form_version', sa.String(length=32), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('call_id', 'form_id')
    )
    op.create_table('qa_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('form_id', sa.String(length=64), nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('answer', sa.String(length=16), nullable=False),
    sa.Column('previous', sa.String(length=16), nullable=False),
    sa.Column('automatic', sa.String(length=16), nullable=False),
    sa.Column('reviewer', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('qa_overrides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_overrides_call_id'), ['call_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('qa_overrides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_overrides_call_id'))
    op.drop_table('qa_overrides')
    op.drop_table('qa_scores')
    with op.batch_alter_table('follow_up_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_follow_up_tasks_due_at'))
        batch_op.drop_index(batch_op.f('ix_follow_up_tasks_agent_id'))
        batch_op.drop_column('done_at')
        batch_op.drop_column('t')
        batch_op.drop_column('due_at')
        batch_op.drop_column('agent_id')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_queue'))
        batch_op.drop_index(batch_op.f('ix_calls_agent_id'))
        batch_op.drop_column('recording')
        batch_op.drop_column('queue')
        batch_op.drop_column('agent_id')
