"""core: bot sync state and handled-event ledger

Revision ID: 0001_core
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("next_batch", sa.String(512), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "seen_event",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("times_seen", sa.Integer(), nullable=False),
    )
    op.create_index("ix_seen_event_room_id", "seen_event", ["room_id"])


def downgrade() -> None:
    op.drop_index("ix_seen_event_room_id", "seen_event")
    op.drop_table("seen_event")
    op.drop_table("sync_state")
