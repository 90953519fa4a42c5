"""Escalation's tables: the case, its evidence, its append-only audit and the notification outbox,
and the machine-readable summary of a case (``org.hearth.escalation``, the webhook's body)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Text, event, text
from sqlmodel import Field, SQLModel

from config.columns import UTCDateTime  # re-exported: moderation.escalation.UTCDateTime
from moderation.escalation.types import AuditImmutable, NotificationStatus, Status

# ---------------------------------------------------------------------------------------------
# Tables


class Escalation(SQLModel, table=True):
    """One crisis episode of one person in one room. Message text lives only in ``excerpt``
    (a clinician needs it) and is blanked by :func:`purge_excerpts` after ``excerpt_purge_after``."""

    __tablename__ = "escalation"
    __table_args__ = (
        Index("ix_escalation_room_sender", "room_id", "sender"),
        Index("ix_escalation_status_deadline", "status", "sla_deadline"),
        # One active episode per person per room: a concurrent duplicate insert fails, the caller
        # retries and merges.
        Index(
            "uq_escalation_active_episode",
            "room_id",
            "sender",
            unique=True,
            sqlite_where=text("status <> 'resolved'"),
            postgresql_where=text("status <> 'resolved'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=16)
    room_id: str = Field(max_length=255)
    sender: str = Field(max_length=255)
    space: str | None = Field(default=None, max_length=64)
    severity: str = Field(max_length=16)
    category: str = Field(max_length=64)
    status: str = Field(default=Status.OPEN.value, max_length=16)
    outcome: str | None = Field(default=None, max_length=32)
    first_event_id: str = Field(max_length=255)
    latest_event_id: str = Field(max_length=255)
    message_count: int = 1
    created_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    updated_at: datetime = Field(sa_type=UTCDateTime())
    sla_deadline: datetime = Field(sa_type=UTCDateTime())
    acknowledged_by: str | None = Field(default=None, max_length=255)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    resolved_by: str | None = Field(default=None, max_length=255)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    repage_count: int = 0
    alert_event_id: str | None = Field(default=None, max_length=255, index=True)
    excerpt: str = Field(default="", sa_type=Text())
    excerpt_purge_after: datetime | None = Field(default=None, sa_type=UTCDateTime())
    locale: str | None = Field(default=None, max_length=35)
    # The care room (moderation/escalation/care.py): the bot's private room with the person, where their
    # resources arrive; a clinician who takes the case is invited into it.
    care_room_id: str | None = Field(default=None, max_length=255)
    taken_by: str | None = Field(default=None, max_length=255)
    taken_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    left_alone_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    care_replies: int = 0
    care_last_reply_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    care_last_page_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class EscalationEvidence(SQLModel, table=True):
    """One row per message attached to an escalation (the first one and every merged one).

    ``signals`` holds detector signals (labels, scores, spans), never message text. ``event_id`` is
    unique, so raising twice for the same event is a no-op.
    """

    __tablename__ = "escalation_evidence"

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: str = Field(foreign_key="escalation.id", index=True, max_length=16)
    event_id: str = Field(max_length=255, unique=True)
    severity: str = Field(max_length=16)
    category: str = Field(max_length=64)
    signals: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON())
    created_at: datetime = Field(sa_type=UTCDateTime())


class EscalationAudit(SQLModel, table=True):
    """Append-only trail: who moved an escalation, from what to what, when and why.

    ``transition``: opened | merged | repaged | acknowledged | resolved | note. Updates and deletes
    are refused by the ORM (:class:`AuditImmutable`) and by database triggers (migration 0004).
    """

    __tablename__ = "escalation_audit"

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: str = Field(foreign_key="escalation.id", index=True, max_length=16)
    transition: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    actor: str = Field(max_length=255)
    note: str | None = Field(default=None, sa_type=Text())
    at: datetime = Field(sa_type=UTCDateTime())


class Notification(SQLModel, table=True):
    """Outbox row: something to deliver, enqueued in the same transaction as the state change.

    ``txn_id`` is ``hearth.<escalation id>.<kind>.<n>`` (n counts that kind for that escalation),
    so the same notification always uses the same Matrix transaction id and a resend after a crash
    is deduplicated by the homeserver. ``payload`` holds the facts fixed at enqueue time (mentions,
    member and locale, webhook body); Matrix content is rendered at delivery from the current row.
    """

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_status_next", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: str = Field(foreign_key="escalation.id", index=True, max_length=16)
    kind: str = Field(max_length=32)
    txn_id: str = Field(max_length=128, unique=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON())
    status: str = Field(default=NotificationStatus.PENDING.value, max_length=16)
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime())
    next_attempt_at: datetime = Field(sa_type=UTCDateTime())
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, sa_type=Text())
    result_event_id: str | None = Field(default=None, max_length=255, index=True)


@event.listens_for(EscalationAudit, "before_update")
def _refuse_audit_update(*_: object) -> None:
    raise AuditImmutable("escalation_audit is append-only: rows cannot be changed")


@event.listens_for(EscalationAudit, "before_delete")
def _refuse_audit_delete(*_: object) -> None:
    raise AuditImmutable("escalation_audit is append-only: rows cannot be deleted")


@dataclass
class EscalationTrail:
    """An escalation with everything that happened to it, oldest first."""

    escalation: Escalation
    evidence: list[EscalationEvidence]
    audit: list[EscalationAudit]
    notifications: list[Notification]


def escalation_summary(esc: Escalation, *, detailed: bool = False) -> dict[str, Any]:
    """The machine-readable ``org.hearth.escalation`` object (exactly the issue's seven keys).

    ``detailed`` adds timestamps and counters (for the webhook); never message text.
    """
    out: dict[str, Any] = {
        "id": esc.id,
        "severity": esc.severity,
        "category": esc.category,
        "status": esc.status,
        "room_id": esc.room_id,
        "event_id": esc.first_event_id,
        "sender": esc.sender,
    }
    if detailed:
        out |= {
            "space": esc.space,
            "outcome": esc.outcome,
            "created_at": esc.created_at.isoformat(),
            "sla_deadline": esc.sla_deadline.isoformat(),
            "acknowledged_by": esc.acknowledged_by,
            "acknowledged_at": esc.acknowledged_at.isoformat() if esc.acknowledged_at else None,
            "resolved_by": esc.resolved_by,
            "resolved_at": esc.resolved_at.isoformat() if esc.resolved_at else None,
            "repage_count": esc.repage_count,
            "message_count": esc.message_count,
        }
    return out
