"""widget settings: on/off, allowed embedding origins, celebration milestone

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 14:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite can, with a constant default): live_sessions is not copied.
    op.add_column("live_sessions", sa.Column("widget_enabled", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("live_sessions", sa.Column("widget_origins", sa.String(length=1000), nullable=False,
                                             server_default=""))
    op.add_column("live_sessions", sa.Column("widget_milestone_fen", sa.BigInteger(), nullable=False,
                                             server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("live_sessions") as batch:
        batch.drop_column("widget_milestone_fen")
        batch.drop_column("widget_origins")
        batch.drop_column("widget_enabled")
