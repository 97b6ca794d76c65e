"""closed reservations: what inventory knows reservations closed, so a late placement takes nothing

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('closed_reservations',
    sa.Column('reservation_id', sa.String(length=36), nullable=False),
    sa.Column('why', sa.String(length=20), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reservation_id')
    )


def downgrade() -> None:
    op.drop_table('closed_reservations')
