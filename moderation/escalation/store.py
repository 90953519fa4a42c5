"""Escalation's store: ids, audit and outbox writes, delivery bookkeeping, lookups and the excerpt
purge. Every function works inside the caller's transaction and never commits."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from config.ids import EventID, RoomID
from moderation.escalation.tables import (
    Escalation,
    EscalationAudit,
    EscalationEvidence,
    EscalationTrail,
    Notification,
    escalation_summary,
)
from moderation.escalation.types import (
    EXCERPT_MAX_CHARS,
    SYSTEM_ACTOR,
    EscalationNotFound,
    NotificationKind,
    NotificationStatus,
    NotStaff,
    RetryPolicy,
    Severity,
    Status,
    as_utc,
)
from moderation.types import Signal

# ---------------------------------------------------------------------------------------------
# Helpers


_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_id(session: Session) -> str:
    for _ in range(20):
        candidate = "E-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
        if session.get(Escalation, candidate) is None:
            return candidate
    raise RuntimeError("could not allocate an escalation id")  # pragma: no cover


def normalize_escalation_id(value: str) -> str:
    """Accept ``e-7k3qx2``, ``7K3QX2`` or ``E-7K3QX2`` (as typed in ``!ack``) -> ``E-7K3QX2``."""
    v = value.strip().upper()
    v = v.removeprefix("E-")
    v = v.translate(str.maketrans("OIL", "011"))
    return f"E-{v}"


def excerpt_of(text_: str) -> str:
    t = " ".join(text_.split())
    if len(t) <= EXCERPT_MAX_CHARS:
        return t
    return t[: EXCERPT_MAX_CHARS - 1].rstrip() + "…"


def signal_json(sig: Signal | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(sig, Signal):
        d: dict[str, Any] = asdict(sig)
        d["evidence"] = [[s.start, s.end] for s in sig.evidence]
        return d
    if is_dataclass(sig) and not isinstance(sig, type):  # pragma: no cover - other dataclasses
        return asdict(sig)
    return dict(sig)


def audit(
    session: Session,
    esc: Escalation,
    transition: str,
    *,
    from_status: str | None,
    actor: str,
    now: datetime,
    note: str | None = None,
) -> EscalationAudit:
    row = EscalationAudit(
        escalation_id=esc.id,
        transition=transition,
        from_status=from_status,
        to_status=esc.status,
        actor=actor,
        note=note,
        at=now,
    )
    session.add(row)
    return row


def enqueue(
    session: Session, esc: Escalation, kind: NotificationKind, payload: dict[str, Any], now: datetime
) -> Notification:
    session.flush()  # so the count below sees rows added earlier in this transaction
    seq = session.exec(
        select(func.count())
        .select_from(Notification)
        .where(Notification.escalation_id == esc.id, Notification.kind == kind.value)
    ).one()
    notif = Notification(
        escalation_id=esc.id,
        kind=kind.value,
        txn_id=f"hearth.{esc.id}.{kind.value}.{seq}",
        payload=payload,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(notif)
    return notif


def webhook_notification(session: Session, esc: Escalation, event_type: str, now: datetime) -> Notification:
    body = {"type": event_type, "at": now.isoformat(), "escalation": escalation_summary(esc, detailed=True)}
    return enqueue(session, esc, NotificationKind.WEBHOOK, body, now)


def dedupe(users: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(u for u in users if u))


def load_escalation(session: Session, esc_id: str, *, lock: bool = True) -> Escalation:
    stmt = select(Escalation).where(Escalation.id == normalize_escalation_id(esc_id))
    if lock:
        stmt = stmt.with_for_update()
    esc = session.exec(stmt).first()
    if esc is None:
        raise EscalationNotFound(esc_id)
    return esc


def require_staff(actor: str, staff: Collection[str]) -> None:
    if actor not in staff:
        raise NotStaff(actor)


def pending_notifications(
    session: Session, now: datetime, *, limit: int = 100, escalation_id: str | None = None
) -> list[Notification]:
    """Notifications due for (re)delivery, oldest first (only ``escalation_id``'s when given).

    A ``staff_update`` is held back until its escalation's alert has been delivered (it edits that
    event); the alert itself always renders the current status, so nothing is lost meanwhile.
    """
    now = as_utc(now)
    stmt = (
        select(Notification)
        .join(Escalation, col(Escalation.id) == col(Notification.escalation_id))
        .where(
            Notification.status == NotificationStatus.PENDING.value,
            Notification.next_attempt_at <= now,
        )
        .where(
            or_(
                col(Notification.kind) != NotificationKind.STAFF_UPDATE.value,
                col(Escalation.alert_event_id).is_not(None),
            )
        )
        .order_by(col(Notification.next_attempt_at), col(Notification.id))
        .limit(limit)
    )
    if escalation_id is not None:
        stmt = stmt.where(Notification.escalation_id == escalation_id)
    return list(session.exec(stmt).all())


def next_notification_at(session: Session) -> datetime | None:
    """When the earliest pending notification is due (for the notifier's sleep), or None."""
    return session.exec(
        select(func.min(Notification.next_attempt_at)).where(
            Notification.status == NotificationStatus.PENDING.value
        )
    ).one()


def mark_sent(
    session: Session, notif_id: int, *, result_event_id: EventID | str | None, now: datetime
) -> Notification:
    """Record a delivery. Idempotent: a second call changes nothing. For a ``staff_alert`` it also
    records the notice's event id as the escalation's ``alert_event_id`` (reactions target it)."""
    now = as_utc(now)
    notif = session.get(Notification, notif_id, with_for_update=True)
    if notif is None:
        raise LookupError(f"no notification {notif_id}")
    if notif.status == NotificationStatus.SENT.value:
        return notif
    notif.status = NotificationStatus.SENT.value
    notif.sent_at = now
    notif.attempts += 1
    notif.result_event_id = result_event_id
    notif.last_error = None
    session.add(notif)
    if notif.kind == NotificationKind.STAFF_ALERT.value and result_event_id:
        esc = session.get(Escalation, notif.escalation_id)
        if esc is not None and esc.alert_event_id is None:
            esc.alert_event_id = result_event_id
            session.add(esc)
    session.flush()
    return notif


def mark_failed(
    session: Session, notif_id: int, *, error: str, now: datetime, retry: RetryPolicy
) -> Notification:
    """Record a failed attempt and schedule the next one with exponential backoff; after
    ``retry.max_attempts`` (if set) the notification is ``failed``. A sent one is left alone."""
    now = as_utc(now)
    notif = session.get(Notification, notif_id, with_for_update=True)
    if notif is None:
        raise LookupError(f"no notification {notif_id}")
    if notif.status == NotificationStatus.SENT.value:
        return notif
    notif.attempts += 1
    notif.last_error = error[:2000]
    if retry.max_attempts is not None and notif.attempts >= retry.max_attempts:
        notif.status = NotificationStatus.FAILED.value
    else:
        notif.next_attempt_at = now + retry.delay(notif.attempts)
    session.add(notif)
    session.flush()
    return notif


def find_by_notice_event(session: Session, event_id: EventID | str) -> Escalation | None:
    """The escalation a staff-room notice belongs to (its alert or a re-page), e.g. for a reaction."""
    esc = session.exec(select(Escalation).where(Escalation.alert_event_id == event_id)).first()
    if esc is not None:
        return esc
    notif = session.exec(
        select(Notification).where(
            Notification.result_event_id == event_id,
            col(Notification.kind).in_([NotificationKind.STAFF_ALERT.value, NotificationKind.REPAGE.value]),
        )
    ).first()
    return session.get(Escalation, notif.escalation_id) if notif is not None else None


def get_escalation(session: Session, esc_id: str) -> Escalation:
    """One escalation by id (``!ack`` spellings accepted), or :class:`EscalationNotFound`."""
    return load_escalation(session, esc_id, lock=False)


def list_escalations(
    session: Session,
    *,
    status: Status | str | Sequence[Status | str] | None = None,
    severity: Severity | str | None = None,
    room_id: RoomID | str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Escalation]:
    """Escalations, newest first, filtered by status (one or several), severity and room."""
    stmt = select(Escalation)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        stmt = stmt.where(col(Escalation.status).in_([Status(s).value for s in statuses]))
    if severity is not None:
        stmt = stmt.where(Escalation.severity == Severity(severity).value)
    if room_id is not None:
        stmt = stmt.where(Escalation.room_id == room_id)
    stmt = stmt.order_by(col(Escalation.created_at).desc(), col(Escalation.id)).offset(offset).limit(limit)
    return list(session.exec(stmt).all())


def get_escalation_with_trail(session: Session, esc_id: str) -> EscalationTrail:
    """An escalation with its evidence, audit trail and notifications (oldest first)."""
    esc = load_escalation(session, esc_id, lock=False)
    evidence = session.exec(
        select(EscalationEvidence)
        .where(EscalationEvidence.escalation_id == esc.id)
        .order_by(col(EscalationEvidence.id))
    ).all()
    audit = session.exec(
        select(EscalationAudit)
        .where(EscalationAudit.escalation_id == esc.id)
        .order_by(col(EscalationAudit.id))
    ).all()
    notes = session.exec(
        select(Notification).where(Notification.escalation_id == esc.id).order_by(col(Notification.id))
    ).all()
    return EscalationTrail(esc, list(evidence), list(audit), list(notes))


def purge_excerpts(session: Session, now: datetime) -> int:
    """Blank the message excerpt of resolved escalations past ``excerpt_purge_after``; returns the count."""
    now = as_utc(now)
    rows = session.exec(
        select(Escalation).where(
            col(Escalation.excerpt_purge_after).is_not(None),
            col(Escalation.excerpt_purge_after) <= now,
            Escalation.excerpt != "",
        )
    ).all()
    for esc in rows:
        esc.excerpt = ""
        session.add(esc)
        audit(session, esc, "excerpt_purged", from_status=esc.status, actor=SYSTEM_ACTOR, now=now)
    session.flush()
    return len(rows)
