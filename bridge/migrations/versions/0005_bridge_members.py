"""bridge: room member join times (new-member trust period) and mutes with expiry

Revision ID: 0005_bridge_members
Revises: 0004_escalation
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_bridge_members"
down_revision = "0004_escalation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "room_member",
        sa.Column("room_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "mute",
        sa.Column("room_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("previous_level", sa.Integer(), nullable=True),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
    )
    op.create_index("ix_mute_until", "mute", ["until"])


def downgrade() -> None:
    op.drop_index("ix_mute_until", "mute")
    op.drop_table("mute")
    op.drop_table("room_member")
