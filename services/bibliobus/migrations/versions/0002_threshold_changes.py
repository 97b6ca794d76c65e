"""the audit of the network's thresholds: who, when, old and new values, why

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:00:00

Changes recorded so far were decisions without a stop, which no route read: they move here, each one's old
values being the previous one's new values (the first one's are not known).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

VALUES = ('enable_threshold', 'disable_threshold', 'consecutive_evaluations', 'window_days')
decisions = sa.table('decisions', sa.column('id', sa.Integer()), sa.column('stop_id', sa.String()),
                     sa.column('at', sa.DateTime(timezone=True)), sa.column('decided_by', sa.String()),
                     sa.column('action', sa.String()), sa.column('reason', sa.String()),
                     sa.column('note', sa.String()), sa.column('enable_threshold', sa.Integer()),
                     sa.column('disable_threshold', sa.Integer()), sa.column('detail', sa.JSON()))
NETWORK = sa.and_(decisions.c.stop_id.is_(None), decisions.c.action == 'thresholds')


def upgrade() -> None:
    """Upgrade schema."""
    changes = op.create_table('threshold_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=80), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    *[sa.Column(f'old_{name}', sa.Integer(), nullable=True) for name in VALUES],
    *[sa.Column(f'new_{name}', sa.Integer(), nullable=False) for name in VALUES],
    sa.PrimaryKeyConstraint('id')
    )
    bind = op.get_bind()
    rows, old = [], dict.fromkeys(VALUES)
    for row in bind.execute(sa.select(decisions).where(NETWORK).order_by(decisions.c.at, decisions.c.id)):
        detail = row.detail or {}
        new = {'enable_threshold': row.enable_threshold, 'disable_threshold': row.disable_threshold,
               'consecutive_evaluations': detail.get('consecutive_evaluations'),
               'window_days': detail.get('window_days')}
        rows.append({'at': row.at, 'changed_by': row.decided_by, 'reason': row.note or '-',
                     **{f'old_{k}': v for k, v in old.items()}, **{f'new_{k}': v for k, v in new.items()}})
        old = new
    if rows:
        op.bulk_insert(changes, rows)
        bind.execute(sa.delete(decisions).where(NETWORK))


def downgrade() -> None:
    """Downgrade schema."""
    changes = sa.table('threshold_changes', sa.column('at', sa.DateTime(timezone=True)),
                       sa.column('changed_by', sa.String()), sa.column('reason', sa.String()),
                       *[sa.column(f'new_{name}', sa.Integer()) for name in VALUES])
    bind = op.get_bind()
    rows = [{'stop_id': None, 'at': c.at, 'decided_by': c.changed_by, 'action': 'thresholds', 'reason': 'manual',
             'note': c.reason, 'enable_threshold': c.new_enable_threshold,
             'disable_threshold': c.new_disable_threshold,
             'detail': {'consecutive_evaluations': c.new_consecutive_evaluations,
                        'window_days': c.new_window_days}} for c in bind.execute(sa.select(changes))]
    if rows:
        op.bulk_insert(decisions, rows)
    op.drop_table('threshold_changes')
