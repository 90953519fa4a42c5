"""verdicts and moderation cases (moderation.models)

Revision ID: 0003_moderation
Revises: 0002_spaces
"""

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0003_moderation"
down_revision = "0002_spaces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "moderation_decision",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("dispositions", sa.JSON(), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("acted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_moderation_decision_room_id", "moderation_decision", ["room_id"])
    op.create_table(
        "flagged_message",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_flagged_message_event_id", "flagged_message", ["event_id"])
    op.create_index("ix_flagged_message_purge_after", "flagged_message", ["purge_after"])


def downgrade() -> None:
    op.drop_index("ix_flagged_message_purge_after", "flagged_message")
    op.drop_index("ix_flagged_message_event_id", "flagged_message")
    op.drop_table("flagged_message")
    op.drop_index("ix_moderation_decision_room_id", "moderation_decision")
    op.drop_table("moderation_decision")
