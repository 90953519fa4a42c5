"""From alert to conversation: the care room of an escalation.

The care room is the bot's private room with the person, the one their crisis resources arrive in.
Until a clinician takes the case, the person's replies there are attached to it (by event, never by
text) and page the on-call clinician; ``take`` invites a clinician in (and acknowledges the case),
after which the conversation is theirs: Hearth only notes that it continues. The person can ask to be
left alone (``!alone``) and is respected: nobody is paged by their replies' absence, a clinician must
say ``anyway`` to join, and writing again ends it. Resolving a case someone talked in closes it kindly.

Pure domain, like :mod:`moderation.escalation`: every function takes a ``Session`` and ``now``, works
in the caller's transaction and enqueues outbox notifications; the bridge commits and delivers.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from moderation.escalation.lifecycle import record_acknowledgement
from moderation.escalation.store import audit, enqueue, load_escalation
from moderation.escalation.tables import Escalation
from moderation.escalation.types import (
    ACTIVE_STATUSES,
    UNACKNOWLEDGED_STATUSES,
    IllegalTransition,
    NotificationKind,
    NotStaff,
    as_utc,
    format_time,
)

# The person's replies page the on-call clinician at most this often (each reply is attached).
REPLY_PAGE_EVERY = timedelta(minutes=5)


def set_care_room(session: Session, esc_id: str, room_id: str) -> Escalation:
    """Remember the care room (the room the person's resources went to); the first one stays."""
    esc = load_escalation(session, esc_id)
    if esc.care_room_id is None:
        esc.care_room_id = room_id
        session.add(esc)
        session.flush()
    return esc


def take(
    session: Session,
    esc_id: str,
    *,
    actor: str,
    clinicians: Collection[str],
    now: datetime,
    anyway: bool = False,
) -> Escalation:
    """A clinician takes the case: they are invited into the care room (``care_join``) and the case
    is acknowledged by them if it was not yet. Refused (:class:`IllegalTransition`, a plain reason)
    when it is resolved, taken by someone else, or the person asked to be left alone (unless ``anyway``)."""
    if actor not in clinicians:
        raise NotStaff(actor)
    now = as_utc(now)
    esc = load_escalation(session, esc_id)
    if esc.status not in {s.value for s in ACTIVE_STATUSES}:
        raise IllegalTransition(
            esc.id, esc.status, "taken", f"{esc.id} is resolved: there is no case to take."
        )
    if esc.taken_by == actor:
        raise IllegalTransition(
            esc.id, esc.status, "taken", f"You already took {esc.id}: you are in the care room."
        )
    if esc.taken_by:
        raise IllegalTransition(
            esc.id,
            esc.status,
            "taken",
            f"{esc.id} was taken by {esc.taken_by} at {format_time(esc.taken_at or now)}; ask them, or add a note.",
        )
    if esc.left_alone_at is not None and not anyway:
        raise IllegalTransition(
            esc.id,
            esc.status,
            "taken",
            f"The person asked to be left alone at {format_time(esc.left_alone_at)}. Join only if there is a "
            f"risk to their life: !take {esc.id} anyway.",
        )
    if esc.status in UNACKNOWLEDGED_STATUSES:
        record_acknowledgement(session, esc, actor, now, "taken into the care room")
    esc.taken_by, esc.taken_at, esc.updated_at = actor, now, now
    session.add(esc)
    audit(
        session,
        esc,
        "taken",
        from_status=esc.status,
        actor=actor,
        now=now,
        note="joined although the person asked to be left alone" if esc.left_alone_at else None,
    )
    enqueue(session, esc, NotificationKind.CARE_JOIN, {"clinician": actor}, now)
    enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "taken", "mentions": []}, now)
    session.flush()
    return esc


def active_case(session: Session, user: str, room_id: str) -> Escalation | None:
    """The person's active escalation whose care room is ``room_id`` (newest), or, when none has a care
    room yet, their newest active escalation (the room is theirs with the bot either way)."""
    active = [s.value for s in ACTIVE_STATUSES]
    rows = session.exec(
        select(Escalation)
        .where(Escalation.sender == user, col(Escalation.status).in_(active))
        .order_by(col(Escalation.created_at).desc())
    ).all()
    return next((e for e in rows if e.care_room_id == room_id), None) or next(
        (e for e in rows if e.care_room_id is None), None
    )


def member_replied(
    session: Session,
    esc_id: str,
    *,
    event_id: str,
    room_id: str,
    now: datetime,
    on_call: Sequence[str],
    page_every: timedelta = REPLY_PAGE_EVERY,
) -> bool:
    """Attach the person's reply in the care room to the case (by event id) and, while nobody has
    taken it, page ``on_call`` (at most every ``page_every``). Writing again ends a wish to be left
    alone. Returns whether a page was enqueued."""
    now = as_utc(now)
    esc = load_escalation(session, esc_id)
    if esc.care_room_id is None:
        esc.care_room_id = room_id
    esc.care_replies += 1
    esc.care_last_reply_at = now
    if esc.left_alone_at is not None:
        esc.left_alone_at = None
        audit(session, esc, "member_returned", from_status=esc.status, actor=esc.sender, now=now)
        enqueue(
            session, esc, NotificationKind.STAFF_UPDATE, {"reason": "member_returned", "mentions": []}, now
        )
    audit(
        session,
        esc,
        "member_replied",
        from_status=esc.status,
        actor=esc.sender,
        now=now,
        note=f"event {event_id}" + (" (conversation continues)" if esc.taken_by else ""),
    )
    paged = False
    last = esc.care_last_page_at
    if esc.taken_by is None and (last is None or now - as_utc(last) >= page_every):
        esc.care_last_page_at = now
        enqueue(
            session,
            esc,
            NotificationKind.CARE_REPLY,
            {"mentions": list(dict.fromkeys(on_call)), "event_id": event_id},
            now,
        )
        paged = True
    esc.updated_at = now
    session.add(esc)
    session.flush()
    return paged


def leave_alone(session: Session, esc_id: str, *, now: datetime) -> Escalation:
    """The person asked to be left alone (``!alone``): noted on the case and shown on its alert."""
    now = as_utc(now)
    esc = load_escalation(session, esc_id)
    if esc.left_alone_at is None:
        esc.left_alone_at = now
        esc.updated_at = now
        session.add(esc)
        audit(session, esc, "left_alone", from_status=esc.status, actor=esc.sender, now=now)
        enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "left_alone", "mentions": []}, now)
        session.flush()
    return esc


# ---------------------------------------------------------------------------------------------
# Rendering (pure)
