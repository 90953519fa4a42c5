"""sign-up code requests held for an operator's approval (join.require_approval)

Revision ID: 0012_join_requests
Revises: 0011_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_join_requests"
down_revision = "0011_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "join_request",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token", sa.String(255), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_join_request_expires_at", "join_request", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_join_request_expires_at", "join_request")
    op.drop_table("join_request")
