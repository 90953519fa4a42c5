"""escalation: the care room (the person's private room with the bot), who took the case, replies

Revision ID: 0007_care_room
Revises: 0006_regions
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_care_room"
down_revision = "0006_regions"
branch_labels = None
depends_on = None

COLUMNS = (
    ("care_room_id", sa.String(255)),
    ("taken_by", sa.String(255)),
    ("taken_at", sa.DateTime(timezone=True)),
    ("left_alone_at", sa.DateTime(timezone=True)),
    ("care_last_reply_at", sa.DateTime(timezone=True)),
    ("care_last_page_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("escalation") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.add_column(sa.Column("care_replies", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("escalation") as batch:
        batch.drop_column("care_replies")
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
