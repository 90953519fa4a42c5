"""moderators' casework: review cases, reports, sanctions with expiry, appeals, notes

Revision ID: 0009_casework
Revises: 0008_staff_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_casework"
down_revision = "0008_staff_sessions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mod_case",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("space", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("trusted_reports", sa.Integer(), nullable=False),
        sa.Column("hidden_at", TS, nullable=True),
        sa.Column("card_event_id", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decision", sa.String(512), nullable=True),
    )
    for column in ("status", "event_id", "subject", "card_event_id", "created_at"):
        op.create_index(f"ix_mod_case_{column}", "mod_case", [column])
    op.create_table(
        "mod_report",
        sa.Column("source_key", sa.String(300), primary_key=True),
        sa.Column("synapse_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.String(16), sa.ForeignKey("mod_case.id"), nullable=False),
        sa.Column("reporter", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    for column in ("synapse_id", "case_id", "subject"):
        op.create_index(f"ix_mod_report_{column}", "mod_report", [column])
    op.create_table(
        "sanction",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("case_id", sa.String(16), nullable=True),
        sa.Column("rooms", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("ended_by", sa.String(255), nullable=True),
        sa.Column("end_reason", sa.String(64), nullable=True),
    )
    for column in ("user_id", "expires_at", "ended_at"):
        op.create_index(f"ix_sanction_{column}", "sanction", [column])
    op.create_table(
        "appeal",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("sanction_id", sa.String(16), sa.ForeignKey("sanction.id"), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("card_event_id", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("reminded_at", TS, nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("purge_after", TS, nullable=False),
    )
    for column in ("sanction_id", "user_id", "status"):
        op.create_index(f"ix_appeal_{column}", "appeal", [column])
    op.create_table(
        "mod_note",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_mod_note_user_id", "mod_note", ["user_id"])
    op.create_table(
        "mod_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("case_id", sa.String(16), nullable=True),
        sa.Column("sanction_id", sa.String(16), nullable=True),
        sa.Column("appeal_id", sa.String(16), nullable=True),
        sa.Column("detail", sa.String(1000), nullable=False),
    )
    op.create_index("ix_mod_audit_at", "mod_audit", ["at"])
    op.create_index("ix_mod_audit_subject", "mod_audit", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_mod_audit_subject", "mod_audit")
    op.drop_index("ix_mod_audit_at", "mod_audit")
    op.drop_table("mod_audit")
    op.drop_index("ix_mod_note_user_id", "mod_note")
    op.drop_table("mod_note")
    for column in ("sanction_id", "user_id", "status"):
        op.drop_index(f"ix_appeal_{column}", "appeal")
    op.drop_table("appeal")
    for column in ("user_id", "expires_at", "ended_at"):
        op.drop_index(f"ix_sanction_{column}", "sanction")
    op.drop_table("sanction")
    for column in ("synapse_id", "case_id", "subject"):
        op.drop_index(f"ix_mod_report_{column}", "mod_report")
    op.drop_table("mod_report")
    for column in ("status", "event_id", "subject", "card_event_id", "created_at"):
        op.drop_index(f"ix_mod_case_{column}", "mod_case")
    op.drop_table("mod_case")
