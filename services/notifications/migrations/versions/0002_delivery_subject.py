"""deliveries know their subject: a later event on it supersedes a waiting message

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('subject_key', sa.String(length=80), nullable=True))
        # Deliveries recorded before stand alone: none amends another.
        batch.add_column(sa.Column('amends', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index('ix_deliveries_subject_key', ['subject_key'])


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_index('ix_deliveries_subject_key')
        batch.drop_column('amends')
        batch.drop_column('subject_key')
