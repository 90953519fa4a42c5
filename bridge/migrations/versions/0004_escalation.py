"""escalations, audit trail and notification outbox (moderation.escalation)

Revision ID: 0004_escalation
Revises: 0003_moderation
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_escalation"
down_revision = "0003_moderation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
