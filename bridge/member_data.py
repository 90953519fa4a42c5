"""A member's own data: ``!mydata`` in their private room with the bot returns what Hearth keeps about
them as a JSON file; ``!forgetme`` (then ``!forgetme yes``) erases it from Hearth.

What is kept about a member: screening decisions on their messages (no text), flagged or held
messages' kept text, escalations (with their excerpt), moderation cases, reports against them,
sanctions, appeals, moderators' notes, their region and welcome agreements, which Hearth rooms
they are in, their session reminders, the sessions they came to and their private practice levels. Erasing keeps the audit trails (escalation audit, moderator actions) without
identifiers: the member's Matrix ID is replaced by a pseudonym nobody can turn back. Two things are
not erased, and the member is told: a crisis case still open with the care team (until it is
closed), and sanctions still in force (they protect others; they end on their own). Hearth cannot
delete the member's messages from the homeserver: the reply points to Synapse's erase-on-deactivate.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from bridge.models import MemberAgreement, MemberRegion, RoomMember
from moderation import casework as cw
from moderation.escalation import ACTIVE_STATUSES, Escalation
from moderation.models import FlaggedMessage, ModerationDecision
from spaces.sessions import store as sessions


def _rows(session: Session, q: Any) -> list[dict[str, Any]]:
    return [cw.as_dict(r) for r in session.exec(q)]


def export(session: Session, user: str, *, now: datetime) -> dict[str, Any]:
    """Everything Hearth keeps about ``user``, as plain JSON-able data."""
    return {
        "user_id": user,
        "exported_at": now.isoformat(),
        "about": "What Hearth keeps about you. Your messages themselves live on the homeserver.",
        "screening_decisions": _rows(
            session, select(ModerationDecision).where(ModerationDecision.sender == user)
        ),
        "messages_kept_for_review": _rows(
            session, select(FlaggedMessage).where(FlaggedMessage.sender == user)
        ),
        "escalations": _rows(session, select(Escalation).where(Escalation.sender == user)),
        "moderation_cases": _rows(session, select(cw.ModCase).where(cw.ModCase.subject == user)),
        "reports_you_made": _rows(session, select(cw.ModReport).where(cw.ModReport.reporter == user)),
        "sanctions": _rows(session, select(cw.Sanction).where(cw.Sanction.user_id == user)),
        "appeals": _rows(session, select(cw.Appeal).where(cw.Appeal.user_id == user)),
        "moderators_notes": _rows(session, select(cw.ModNote).where(cw.ModNote.user_id == user)),
        "region": _rows(session, select(MemberRegion).where(MemberRegion.user_id == user)),
        "welcomes": _rows(session, select(MemberAgreement).where(MemberAgreement.user_id == user)),
        "rooms": _rows(session, select(RoomMember).where(RoomMember.user_id == user)),
    } | {
        name: _rows(session, select(table).where(table.user_id == user))  # type: ignore[attr-defined]
        for name, table in sessions.member_tables().items()
    }


def export_file(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class Erased:
    erased: dict[str, int]
    kept_active_escalations: int
    kept_active_sanctions: int
    pseudonym: str


def pseudonym(user: str) -> str:
    """A stand-in for an erased member in audit trails: salted, so nobody can turn it back."""
    return "forgotten-" + hashlib.sha256((secrets.token_hex(16) + user).encode()).hexdigest()[:12]


def erase(session: Session, user: str, *, now: datetime) -> Erased:
    """Erase ``user`` from Hearth (within the caller's transaction), keeping audit trails without
    identifiers; an open crisis case and sanctions in force stay (see the module doc)."""
    alias = pseudonym(user)
    counts: dict[str, int] = {}

    def count(name: str, result: Any) -> None:
        counts[name] = int(getattr(result, "rowcount", 0) or 0)

    active = [s.value for s in ACTIVE_STATUSES]
    open_cases = session.exec(
        select(Escalation).where(Escalation.sender == user, col(Escalation.status).in_(active))
    ).all()
    in_force = cw.active_sanctions(session, now, user=user)
    count(
        "screening_decisions",
        session.execute(delete(ModerationDecision).where(col(ModerationDecision.sender) == user)),
    )
    count(
        "messages_kept_for_review",
        session.execute(delete(FlaggedMessage).where(col(FlaggedMessage.sender) == user)),
    )
    count(
        "escalations",
        session.execute(
            update(Escalation)
            .where(col(Escalation.sender) == user, col(Escalation.status).not_in(active))
            .values(sender=alias, excerpt="")
        ),
    )
    count(
        "moderation_cases",
        session.execute(update(cw.ModCase).where(col(cw.ModCase.subject) == user).values(subject=alias)),
    )
    count(
        "reports",
        session.execute(update(cw.ModReport).where(col(cw.ModReport.subject) == user).values(subject=alias)),
    )
    count(
        "reports_made",
        session.execute(
            update(cw.ModReport).where(col(cw.ModReport.reporter) == user).values(reporter=alias)
        ),
    )
    keep = [s.id for s in in_force]
    count(
        "sanctions",
        session.execute(
            update(cw.Sanction)
            .where(col(cw.Sanction.user_id) == user, col(cw.Sanction.id).not_in(keep))
            .values(user_id=alias)
        ),
    )
    count(
        "appeals",
        session.execute(
            update(cw.Appeal).where(col(cw.Appeal.user_id) == user).values(user_id=alias, text="")
        ),
    )
    count("moderators_notes", session.execute(delete(cw.ModNote).where(col(cw.ModNote.user_id) == user)))
    count(
        "audit",
        session.execute(update(cw.ModAudit).where(col(cw.ModAudit.subject) == user).values(subject=alias)),
    )
    count("region", session.execute(delete(MemberRegion).where(col(MemberRegion.user_id) == user)))
    count("welcomes", session.execute(delete(MemberAgreement).where(col(MemberAgreement.user_id) == user)))
    count("rooms", session.execute(delete(RoomMember).where(col(RoomMember.user_id) == user)))
    counts |= sessions.erase_member(session, user)
    return Erased(counts, len(open_cases), len(in_force), alias)


ERASE_ON_DEACTIVATE = (
    "Hearth cannot delete your messages from the homeserver. To do that, deactivate your account and "
    "ask for your messages to be erased: in Element, Settings → Account → Deactivate account, and tick "
    "\u201chide my messages from new joiners\u201d (the homeserver's erase-on-deactivate)."
)


def forget_question() -> str:
    return (
        "This will erase what Hearth keeps about you: screening decisions, kept messages, crisis and "
        "moderation records, notes, your region and welcomes, session reminders and attendance, practice "
        "levels (audit trails stay, without your name). "
        "A crisis case still open with the care team, and a sanction still in force, are kept until "
        "they end. To go ahead, send !forgetme yes. " + ERASE_ON_DEACTIVATE
    )


def forget_answer(result: Erased) -> str:
    total = sum(result.erased.values())
    parts = [f"Done: {total} record(s) about you were erased or made anonymous in Hearth."]
    if result.kept_active_escalations:
        parts.append("Your open case with the care team is kept until it is closed; ask again after.")
    if result.kept_active_sanctions:
        parts.append("A moderation decision still in force is kept until it ends.")
    parts.append(ERASE_ON_DEACTIVATE)
    return " ".join(parts)
