"""verdicts and moderation cases (moderation.models)

Revision ID: 0003_moderation
Revises: 0002_spaces
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_moderation"
down_revision = "0002_spaces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
