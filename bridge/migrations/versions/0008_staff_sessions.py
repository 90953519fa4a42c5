"""staff sign-in sessions (Matrix OpenID): one row per sign-in, revoked on sign-out

Revision ID: 0008_staff_sessions
Revises: 0007_care_room
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_staff_sessions"
down_revision = "0007_care_room"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_session",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_staff_session_user_id", "staff_session", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_staff_session_user_id", "staff_session")
    op.drop_table("staff_session")
