"""regions for crisis lines: each space's (from its theme) and each member's own choice (!region)

Revision ID: 0006_regions
Revises: 0005_bridge_members
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_regions"
down_revision = "0005_bridge_members"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provisioned_space") as batch:
        batch.add_column(sa.Column("region", sa.String(8), nullable=True))
    op.create_table(
        "member_region",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("member_region")
    with op.batch_alter_table("provisioned_space") as batch:
        batch.drop_column("region")
