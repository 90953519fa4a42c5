"""Escalation's lifecycle: the allowed transitions, raising (or merging into the active episode),
acknowledging, resolving and notes. One transaction each; the caller commits."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from config.ids import EventID, RoomID, UserID
from moderation.escalation.store import (
    audit,
    dedupe,
    enqueue,
    excerpt_of,
    load_escalation,
    new_id,
    require_staff,
    signal_json,
    webhook_notification,
)
from moderation.escalation.tables import Escalation, EscalationAudit, EscalationEvidence
from moderation.escalation.types import (
    _OUTCOME_ALIASES,
    ACTIVE_STATUSES,
    OUTCOME_LABELS,
    SYSTEM_ACTOR,
    UNACKNOWLEDGED_STATUSES,
    IllegalTransition,
    NotificationKind,
    Outcome,
    Severity,
    SlaPolicy,
    Status,
    as_utc,
    format_time,
)
from moderation.types import Signal

# ---------------------------------------------------------------------------------------------
# The state machine (pure)

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.REPAGED, Status.ACKNOWLEDGED}),
    Status.REPAGED: frozenset({Status.REPAGED, Status.ACKNOWLEDGED}),
    Status.ACKNOWLEDGED: frozenset({Status.RESOLVED}),
    Status.RESOLVED: frozenset(),
}


def check_transition(esc: Escalation, to_status: Status | str) -> None:
    """Raise :class:`IllegalTransition` (with a human reason) unless ``esc`` may move to ``to_status``."""
    frm = Status(esc.status)
    to = Status(to_status)
    if to in _ALLOWED[frm]:
        return
    if frm is Status.RESOLVED:
        outcome = OUTCOME_LABELS.get(Outcome(esc.outcome), esc.outcome) if esc.outcome else "no outcome"
        reason = (
            f"{esc.id} was already resolved ({outcome}) by {esc.resolved_by}; "
            "a resolved escalation cannot change (add a note instead)."
        )
    elif frm is Status.ACKNOWLEDGED and to is Status.ACKNOWLEDGED:
        when = format_time(esc.acknowledged_at) if esc.acknowledged_at else "earlier"
        reason = f"{esc.id} was already acknowledged by {esc.acknowledged_by} at {when}."
    elif frm is Status.ACKNOWLEDGED and to is Status.REPAGED:
        reason = f"{esc.id} is acknowledged by {esc.acknowledged_by}, so it is not re-paged."
    elif to is Status.OPEN:
        reason = f"{esc.id} cannot go back to open."
    else:
        reason = f"{esc.id} cannot go from {frm.value} to {to.value}."
    raise IllegalTransition(esc.id, frm.value, to.value, reason)


def parse_outcome(value: str) -> Outcome:
    """``"false-alarm"``, ``"False alarm"``, ``"referred"`` ... -> :class:`Outcome`; ValueError lists the valid ones."""
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return Outcome(key)
    except ValueError:
        if key in _OUTCOME_ALIASES:
            return _OUTCOME_ALIASES[key]
    valid = ", ".join(o.value for o in Outcome)
    raise ValueError(f"Unknown outcome {value!r}; use one of: {valid}.")


# ---------------------------------------------------------------------------------------------
# Operations (one transaction each; the caller commits)


def raise_escalation(
    session: Session,
    *,
    room_id: RoomID | str,
    sender: UserID | str,
    event_id: EventID | str,
    severity: Severity | str,
    category: str,
    signals: Sequence[Signal | Mapping[str, Any]],
    excerpt: str,
    space: str | None = None,
    locale: str | None = None,
    now: datetime,
    sla: SlaPolicy,
    on_call: Sequence[UserID | str] = (),
    webhook: bool = False,
) -> tuple[Escalation, bool]:
    """Open an escalation for a crisis message, or merge it into the sender's active one in that room.

    Returns ``(escalation, created)``. If ``event_id`` was already recorded (a re-screen), nothing
    changes and ``created`` is False. A *merge* (same sender and room, status open, repaged or
    acknowledged) attaches the evidence, upgrades severity/category/excerpt if the new tier is
    higher (tightening the SLA deadline of an unacknowledged one), audits ``merged`` and enqueues a
    ``staff_update`` edit (mentioning ``on_call`` and the acknowledging clinician on an upgrade).
    A new escalation gets evidence, an ``opened`` audit row and outbox rows ``staff_alert``
    (mentioning ``on_call``), ``member_resources`` (once per episode) and ``webhook`` if enabled.
    Two concurrent creations for one episode collide on ``uq_escalation_active_episode``; retry.
    """
    now = as_utc(now)
    sev = Severity(severity)
    mentions = dedupe(on_call)
    sig_json = [signal_json(s) for s in signals]

    seen = session.exec(select(EscalationEvidence).where(EscalationEvidence.event_id == event_id)).first()
    if seen is not None:
        # The same message again (the after-delivery safety net, or the models after the rules'
        # fast verdict): nothing changes unless it now reads as more urgent on an active case.
        esc = load_escalation(session, seen.escalation_id)
        if sev.rank <= Severity(esc.severity).rank or esc.status not in [s.value for s in ACTIVE_STATUSES]:
            return esc, False
        return _merge(
            session, esc, event_id, sev, category, excerpt, sig_json, mentions, now, sla, webhook, repeat=True
        ), False

    active = session.exec(
        select(Escalation)
        .where(
            Escalation.room_id == room_id,
            Escalation.sender == sender,
            col(Escalation.status).in_([s.value for s in ACTIVE_STATUSES]),
        )
        .with_for_update()
    ).first()

    if active is not None:
        return _merge(
            session, active, event_id, sev, category, excerpt, sig_json, mentions, now, sla, webhook
        ), False

    esc = Escalation(
        id=new_id(session),
        room_id=room_id,
        sender=sender,
        space=space,
        severity=sev.value,
        category=category,
        status=Status.OPEN.value,
        first_event_id=event_id,
        latest_event_id=event_id,
        created_at=now,
        updated_at=now,
        sla_deadline=sla.deadline(sev, now),
        excerpt=excerpt_of(excerpt),
        locale=locale,
    )
    session.add(esc)
    session.flush()
    session.add(_evidence(esc, event_id, sev, category, sig_json, now))
    audit(
        session,
        esc,
        "opened",
        from_status=None,
        actor=SYSTEM_ACTOR,
        now=now,
        note=f"message {event_id} ({sev.value}, {category})",
    )
    enqueue(session, esc, NotificationKind.STAFF_ALERT, {"mentions": mentions}, now)
    enqueue(
        session,
        esc,
        NotificationKind.MEMBER_RESOURCES,
        {"user_id": sender, "room_id": room_id, "locale": locale},
        now,
    )
    if webhook:
        webhook_notification(session, esc, "escalation.opened", now)
    session.flush()
    return esc, True


def acknowledge(
    session: Session,
    esc_id: str,
    *,
    actor: UserID | str,
    staff: Collection[str],
    now: datetime,
    note: str | None = None,
    webhook: bool = False,
) -> Escalation:
    """A clinician takes the escalation (reaction, ``!ack`` or API). Stops re-paging.

    Raises :class:`NotStaff`, :class:`EscalationNotFound` or :class:`IllegalTransition` (already
    acknowledged or resolved; the reason names who and when). Enqueues a ``staff_update`` edit.
    """
    require_staff(actor, staff)
    now = as_utc(now)
    esc = load_escalation(session, esc_id)
    record_acknowledgement(session, esc, actor, now, note)
    if webhook:
        webhook_notification(session, esc, "escalation.acknowledged", now)
    session.flush()
    return esc


def record_acknowledgement(
    session: Session, esc: Escalation, actor: str, now: datetime, note: str | None
) -> None:
    check_transition(esc, Status.ACKNOWLEDGED)
    frm = esc.status
    esc.status = Status.ACKNOWLEDGED.value
    esc.acknowledged_by = actor
    esc.acknowledged_at = now
    esc.updated_at = now
    session.add(esc)
    audit(session, esc, "acknowledged", from_status=frm, actor=actor, now=now, note=note)
    enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "acknowledged", "mentions": []}, now)


def resolve(
    session: Session,
    esc_id: str,
    *,
    actor: UserID | str,
    staff: Collection[str],
    outcome: Outcome | str,
    now: datetime,
    note: str | None = None,
    webhook: bool = False,
    excerpt_retention: timedelta = timedelta(days=30),
) -> Escalation:
    """Close the escalation with an ``outcome`` (a string is parsed leniently by :func:`parse_outcome`).

    An open or repaged escalation is acknowledged by ``actor`` first (audited separately).
    Schedules the excerpt for purging ``excerpt_retention`` after resolution. Raises
    :class:`NotStaff`, :class:`EscalationNotFound`, :class:`IllegalTransition` or ``ValueError``
    (unknown outcome).
    """
    require_staff(actor, staff)
    now = as_utc(now)
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome)
    esc = load_escalation(session, esc_id)
    if esc.status in UNACKNOWLEDGED_STATUSES:
        check_transition(esc, Status.ACKNOWLEDGED)
        frm = esc.status
        esc.status = Status.ACKNOWLEDGED.value
        esc.acknowledged_by = actor
        esc.acknowledged_at = now
        audit(
            session,
            esc,
            "acknowledged",
            from_status=frm,
            actor=actor,
            now=now,
            note="acknowledged on resolve",
        )
    check_transition(esc, Status.RESOLVED)
    frm = esc.status
    esc.status = Status.RESOLVED.value
    esc.outcome = out.value
    esc.resolved_by = actor
    esc.resolved_at = now
    esc.updated_at = now
    esc.excerpt_purge_after = now + excerpt_retention
    session.add(esc)
    audit(session, esc, "resolved", from_status=frm, actor=actor, now=now, note=_join_note(out, note))
    enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "resolved", "mentions": []}, now)
    if esc.care_room_id and (esc.taken_by or esc.care_replies):  # a conversation happened: close it kindly
        enqueue(session, esc, NotificationKind.CARE_CLOSED, {"by": actor}, now)
    if webhook:
        webhook_notification(session, esc, "escalation.resolved", now)
    session.flush()
    return esc


def _join_note(out: Outcome, note: str | None) -> str:
    return f"outcome: {out.value}" + (f"; {note}" if note else "")


def add_note(
    session: Session,
    esc_id: str,
    *,
    actor: UserID | str,
    staff: Collection[str],
    note: str,
    now: datetime,
) -> EscalationAudit:
    """Append a staff note to the trail (any status, including resolved, for follow-ups)."""
    require_staff(actor, staff)
    now = as_utc(now)
    if not note.strip():
        raise ValueError("A note cannot be empty.")
    esc = load_escalation(session, esc_id, lock=False)
    row = audit(session, esc, "note", from_status=esc.status, actor=actor, now=now, note=note.strip())
    session.flush()
    return row


def _merge(
    session: Session,
    esc: Escalation,
    event_id: str,
    sev: Severity,
    category: str,
    excerpt: str,
    sig_json: list[dict[str, Any]],
    mentions: list[str],
    now: datetime,
    sla: SlaPolicy,
    webhook: bool,
    *,
    repeat: bool = False,
) -> Escalation:
    """A further message (or, ``repeat``, the same one read as more urgent) joins the active case."""
    old = Severity(esc.severity)
    upgraded = sev.rank > old.rank
    note = f"message {event_id} ({sev.value}, {category})"
    if upgraded:
        esc.severity = sev.value
        esc.category = category
        esc.excerpt = excerpt_of(excerpt)
        note += f"; severity {old.value} -> {sev.value}"
        if esc.status in UNACKNOWLEDGED_STATUSES:
            esc.sla_deadline = min(esc.sla_deadline, sla.deadline(sev, now))
    esc.updated_at = now
    session.add(esc)
    if repeat:
        note = (
            f"message {event_id} read again as {sev.value}, {category}; severity {old.value} -> {sev.value}"
        )
    else:
        esc.latest_event_id = event_id
        esc.message_count += 1
        session.add(_evidence(esc, event_id, sev, category, sig_json, now))
    audit(session, esc, "merged", from_status=esc.status, actor=SYSTEM_ACTOR, now=now, note=note)
    update_mentions: list[str] = []
    if upgraded:
        update_mentions = dedupe([*mentions, esc.acknowledged_by or ""])
    enqueue(
        session,
        esc,
        NotificationKind.STAFF_UPDATE,
        {"reason": "merged", "event_id": event_id, "upgraded": upgraded, "mentions": update_mentions},
        now,
    )
    if upgraded and webhook:
        webhook_notification(session, esc, "escalation.upgraded", now)
    session.flush()
    return esc


def _evidence(
    esc: Escalation,
    event_id: str,
    sev: Severity,
    category: str,
    sig_json: list[dict[str, Any]],
    now: datetime,
) -> EscalationEvidence:
    return EscalationEvidence(
        escalation_id=esc.id,
        event_id=event_id,
        severity=sev.value,
        category=category,
        signals=sig_json,
        created_at=now,
    )
