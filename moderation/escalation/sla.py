"""Escalation's SLA: which unacknowledged cases are overdue, the deadlines the bridge's timers
keep, and re-paging (the backup rota joins the on-call clinician)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from config.ids import UserID
from moderation.escalation.lifecycle import check_transition
from moderation.escalation.store import audit, dedupe, enqueue, load_escalation, webhook_notification
from moderation.escalation.tables import Escalation, Notification
from moderation.escalation.types import (
    SYSTEM_ACTOR,
    UNACKNOWLEDGED_STATUSES,
    IllegalTransition,
    NotificationKind,
    Severity,
    SlaPolicy,
    Status,
    as_utc,
    format_time,
)


def due_for_repage(session: Session, now: datetime) -> list[Escalation]:
    """Unacknowledged escalations whose SLA deadline has passed, most overdue first."""
    now = as_utc(now)
    return list(
        session.exec(
            select(Escalation)
            .where(
                col(Escalation.status).in_([s.value for s in UNACKNOWLEDGED_STATUSES]),
                Escalation.sla_deadline <= now,
            )
            .order_by(col(Escalation.sla_deadline))
        ).all()
    )


def active_deadlines(session: Session) -> list[tuple[str, datetime]]:
    """``(escalation id, sla_deadline)`` of every unacknowledged escalation: rebuild timers at start-up."""
    rows = session.exec(
        select(Escalation.id, Escalation.sla_deadline)
        .where(col(Escalation.status).in_([s.value for s in UNACKNOWLEDGED_STATUSES]))
        .order_by(col(Escalation.sla_deadline))
    ).all()
    return [(i, d) for i, d in rows]


def repage(
    session: Session,
    esc_id: str,
    *,
    now: datetime,
    sla: SlaPolicy,
    backup: Sequence[UserID | str],
    clinicians: Sequence[UserID | str] = (),
    webhook: bool = False,
) -> list[Notification]:
    """Re-page an unacknowledged escalation whose deadline passed: status ``repaged``, a new
    deadline ``now + sla``, a ``repage`` notice mentioning ``backup`` (and, for imminent, every
    one of ``clinicians``) and a ``staff_update`` edit of the original alert.

    Raises :class:`IllegalTransition` if it was acknowledged or resolved meanwhile or its deadline
    has not passed (a stale timer): the scheduler can log and drop it.
    """
    now = as_utc(now)
    esc = load_escalation(session, esc_id)
    check_transition(esc, Status.REPAGED)
    if esc.sla_deadline > now:
        raise IllegalTransition(
            esc.id,
            esc.status,
            Status.REPAGED.value,
            f"{esc.id} is not due yet (deadline {format_time(esc.sla_deadline)}).",
        )
    frm = esc.status
    esc.status = Status.REPAGED.value
    esc.repage_count += 1
    esc.sla_deadline = sla.deadline(esc.severity, now)
    esc.updated_at = now
    session.add(esc)
    mentions = list(backup)
    if esc.severity == Severity.IMMINENT.value:
        mentions += list(clinicians)
    mentions = dedupe(mentions)
    audit(
        session,
        esc,
        "repaged",
        from_status=frm,
        actor=SYSTEM_ACTOR,
        now=now,
        note=f"re-page #{esc.repage_count}: SLA passed unacknowledged; paging {', '.join(mentions) or 'nobody'}",
    )
    out = [
        enqueue(
            session,
            esc,
            NotificationKind.REPAGE,
            {"mentions": mentions, "repage": esc.repage_count},
            now,
        ),
        enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "repaged", "mentions": []}, now),
    ]
    if webhook:
        out.append(webhook_notification(session, esc, "escalation.repaged", now))
    session.flush()
    return out
