"""members' welcome to a space and their agreement to its guidelines

Revision ID: 0010_welcome
Revises: 0009_casework
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_welcome"
down_revision = "0009_casework"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_agreement",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("space", sa.String(64), primary_key=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("welcome_room_id", sa.String(255), nullable=True),
        sa.Column("welcome_event_id", sa.String(255), nullable=True),
        sa.Column("agreed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_member_agreement_welcome_event_id", "member_agreement", ["welcome_event_id"])


def downgrade() -> None:
    op.drop_index("ix_member_agreement_welcome_event_id", "member_agreement")
    op.drop_table("member_agreement")
