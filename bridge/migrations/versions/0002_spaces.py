"""catalogue of provisioned spaces and rooms (spaces.models)

Revision ID: 0002_spaces
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_spaces"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provisioned_space",
        sa.Column("theme_slug", sa.String(64), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(255), nullable=False),
        sa.Column("theme_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_provisioned_space_room_id", "provisioned_space", ["room_id"], unique=True)
    op.create_table(
        "provisioned_room",
        sa.Column("alias", sa.String(255), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("space_slug", sa.String(64), nullable=False),
        sa.Column("room_slug", sa.String(64), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("members_may_post", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_provisioned_room_room_id", "provisioned_room", ["room_id"], unique=True)
    op.create_index("ix_provisioned_room_space_slug", "provisioned_room", ["space_slug"])
    op.create_table(
        "uploaded_media",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("mxc", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("uploaded_media")
    op.drop_index("ix_provisioned_room_space_slug", "provisioned_room")
    op.drop_index("ix_provisioned_room_room_id", "provisioned_room")
    op.drop_table("provisioned_room")
    op.drop_index("ix_provisioned_space_room_id", "provisioned_space")
    op.drop_table("provisioned_space")
