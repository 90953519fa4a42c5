"""escalations, audit trail and notification outbox (moderation.escalation)

Revision ID: 0004_escalation
Revises: 0003_moderation

Also makes ``escalation_audit`` append-only in the database itself (triggers refusing UPDATE and
DELETE), on top of the ORM guard in ``moderation.escalation``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_escalation"
down_revision = "0003_moderation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "escalation",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("space", sa.String(64), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("first_event_id", sa.String(255), nullable=False),
        sa.Column("latest_event_id", sa.String(255), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("sla_deadline", TS, nullable=False),
        sa.Column("acknowledged_by", sa.String(255), nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("resolved_by", sa.String(255), nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("repage_count", sa.Integer(), nullable=False),
        sa.Column("alert_event_id", sa.String(255), nullable=True),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("excerpt_purge_after", TS, nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
    )
    op.create_index("ix_escalation_created_at", "escalation", ["created_at"])
    op.create_index("ix_escalation_alert_event_id", "escalation", ["alert_event_id"])
    op.create_index("ix_escalation_room_sender", "escalation", ["room_id", "sender"])
    op.create_index("ix_escalation_status_deadline", "escalation", ["status", "sla_deadline"])
    op.create_index(
        "uq_escalation_active_episode",
        "escalation",
        ["room_id", "sender"],
        unique=True,
        sqlite_where=sa.text("status <> 'resolved'"),
        postgresql_where=sa.text("status <> 'resolved'"),
    )

    op.create_table(
        "escalation_evidence",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("escalation_id", sa.String(16), sa.ForeignKey("escalation.id"), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_escalation_evidence_escalation_id", "escalation_evidence", ["escalation_id"])

    op.create_table(
        "escalation_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("escalation_id", sa.String(16), sa.ForeignKey("escalation.id"), nullable=False),
        sa.Column("transition", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_escalation_audit_escalation_id", "escalation_audit", ["escalation_id"])

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("escalation_id", sa.String(16), sa.ForeignKey("escalation.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("txn_id", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result_event_id", sa.String(255), nullable=True),
        sa.UniqueConstraint("txn_id"),
    )
    op.create_index("ix_notification_escalation_id", "notification", ["escalation_id"])
    op.create_index("ix_notification_status_next", "notification", ["status", "next_attempt_at"])
    op.create_index("ix_notification_result_event_id", "notification", ["result_event_id"])

    _create_audit_guard()


def _create_audit_guard() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER escalation_audit_no_{verb.lower()} BEFORE {verb} ON escalation_audit "
                "BEGIN SELECT RAISE(ABORT, 'escalation_audit is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION escalation_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'escalation_audit is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER escalation_audit_append_only BEFORE UPDATE OR DELETE ON escalation_audit "
            "FOR EACH ROW EXECUTE FUNCTION escalation_audit_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_notification_result_event_id", "notification")
    op.drop_index("ix_notification_status_next", "notification")
    op.drop_index("ix_notification_escalation_id", "notification")
    op.drop_table("notification")
    # Dropping the table drops its triggers on both databases; the PostgreSQL function stays.
    op.drop_index("ix_escalation_audit_escalation_id", "escalation_audit")
    op.drop_table("escalation_audit")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS escalation_audit_append_only()")
    op.drop_index("ix_escalation_evidence_escalation_id", "escalation_evidence")
    op.drop_table("escalation_evidence")
    op.drop_index("uq_escalation_active_episode", "escalation")
    op.drop_index("ix_escalation_status_deadline", "escalation")
    op.drop_index("ix_escalation_room_sender", "escalation")
    op.drop_index("ix_escalation_alert_event_id", "escalation")
    op.drop_index("ix_escalation_created_at", "escalation")
    op.drop_table("escalation")
