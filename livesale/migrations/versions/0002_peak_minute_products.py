"""what sold in the peak minute, persisted with a session's results

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 14:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Results persisted before this revision do not know it: NULL, shown as unknown.
    op.add_column("session_results", sa.Column("peak_products", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_results") as batch:
        batch.drop_column("peak_products")
