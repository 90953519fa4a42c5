"""group sessions: series, dated occurrences, facilitators, reminder opt-ins, attendance, private
exposure levels; the room kind in the catalogue

Revision ID: 0011_sessions
Revises: 0010_welcome
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_sessions"
down_revision = "0010_welcome"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("provisioned_room") as batch:
        batch.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default=""))
    op.create_table(
        "session_series",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("space", sa.String(64), nullable=False),
        sa.Column("room_alias", sa.String(255), nullable=False),
        sa.Column("theme_key", sa.String(140), nullable=True, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("led_by", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(500), nullable=False),
        sa.Column("first_local", sa.String(32), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        _at("created_at", False),
        _at("updated_at", False),
        _at("ended_at"),
    )
    op.create_index("ix_session_series_space", "session_series", ["space"])
    op.create_index("ix_session_series_room_alias", "session_series", ["room_alias"])
    op.create_table(
        "session_facilitator",
        sa.Column("series_id", sa.String(16), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("added_by", sa.String(255), nullable=False),
        _at("added_at", False),
    )
    op.create_table(
        "session_occurrence",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("series_id", sa.String(16), nullable=False),
        _at("starts_at", False),
        _at("ends_at", False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("present_at"),
        sa.Column("present_by", sa.String(255), nullable=True),
        _at("opened_at"),
        _at("closed_at"),
        _at("reminded_day_at"),
        _at("reminded_soon_at"),
        sa.Column("joined", sa.Integer(), nullable=False),
        sa.Column("posted", sa.Integer(), nullable=False),
        sa.UniqueConstraint("series_id", "starts_at", name="uq_session_occurrence_start"),
    )
    for column in ("series_id", "starts_at", "ends_at", "status"):
        op.create_index(f"ix_session_occurrence_{column}", "session_occurrence", [column])
    op.create_table(
        "session_attendee",
        sa.Column("occurrence_id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        _at("joined_at"),
        _at("posted_at"),
    )
    op.create_index("ix_session_attendee_user_id", "session_attendee", ["user_id"])
    op.create_table(
        "session_reminder",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("series_id", sa.String(16), primary_key=True),
        _at("created_at", False),
    )
    op.create_index("ix_session_reminder_series_id", "session_reminder", ["series_id"])
    op.create_table(
        "exposure_level",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("space", sa.String(64), primary_key=True),
        sa.Column("level", sa.String(40), nullable=False),
        _at("updated_at", False),
    )


def downgrade() -> None:
    for table in (
        "exposure_level",
        "session_reminder",
        "session_attendee",
        "session_occurrence",
        "session_facilitator",
        "session_series",
    ):
        op.drop_table(table)
    with op.batch_alter_table("provisioned_room") as batch:
        batch.drop_column("kind")
