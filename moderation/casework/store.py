"""Casework's store: the review queue, reports, sanctions, appeals, notes and a member's file.
Every function works inside the caller's transaction, takes ``now`` and never commits."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, update
from sqlmodel import Session, SQLModel, col, select

from moderation.casework.tables import Appeal, ModAudit, ModCase, ModNote, ModReport, Sanction
from moderation.casework.types import (
    ALL_SPACES,
    ActiveMute,
    AppealStatus,
    CaseKind,
    CaseNotFound,
    CaseStatus,
    CaseworkError,
    NotPermitted,
    ReporterRecord,
    SanctionKind,
)
from moderation.escalation.types import as_utc
from moderation.models import FlaggedMessage, ModerationDecision

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_LABEL = re.compile(r"(?<!\S)#([a-z0-9][a-z0-9_-]{0,31})\b", re.IGNORECASE)
T = TypeVar("T", bound=SQLModel)


def _new_id(session: Session, table: type[T], prefix: str) -> str:
    for _ in range(20):
        candidate = f"{prefix}-" + "".join(secrets.choice(_ALPHABET) for _ in range(6))
        if session.get(table, candidate) is None:
            return candidate
    raise RuntimeError(f"could not allocate a {prefix} id")  # pragma: no cover


def normalize_id(value: str, prefix: str) -> str:
    """``m-7k3qx2``, ``7K3QX2`` or ``M-7K3QX2`` (as typed) -> ``M-7K3QX2``."""
    v = value.strip().upper().removeprefix(f"{prefix}-")
    return f"{prefix}-" + v.translate(str.maketrans("OIL", "011"))


# ---------------------------------------------------------------------------------------------
# The review queue


def open_case(
    session: Session,
    *,
    kind: CaseKind,
    room_id: str,
    event_id: str,
    subject: str,
    space: str | None,
    reason: str,
    now: datetime,
    signals: list[str] | None = None,
    priority: int = 1,
) -> tuple[ModCase, bool]:
    """The open case for ``event_id``, or a new one; returns (case, created). One message has at
    most one open case: a flag and reports of the same message meet in it."""
    existing = session.exec(
        select(ModCase).where(ModCase.event_id == event_id, ModCase.status == CaseStatus.OPEN.value)
    ).first()
    if existing is not None:
        existing.priority = max(existing.priority, priority)
        existing.signals = sorted({*existing.signals, *(signals or [])})
        existing.updated_at = as_utc(now)
        session.add(existing)
        return existing, False
    case = ModCase(
        id=_new_id(session, ModCase, "M"),
        kind=kind.value,
        room_id=room_id,
        event_id=event_id,
        subject=subject,
        space=space,
        reason=reason[:512],
        signals=sorted(set(signals or [])),
        priority=priority,
        created_at=as_utc(now),
        updated_at=as_utc(now),
    )
    session.add(case)
    session.flush()
    return case, True


def open_held_case(session: Session, subject: str, room_id: str, *, since: datetime) -> ModCase | None:
    """The member's open "held" case in that room opened since ``since``, if any."""
    q = select(ModCase).where(
        ModCase.subject == subject,
        ModCase.room_id == room_id,
        ModCase.kind == CaseKind.HELD.value,
        ModCase.status == CaseStatus.OPEN.value,
    )
    return next((c for c in session.exec(q) if as_utc(c.created_at) >= as_utc(since)), None)


def add_held(session: Session, case_id: str, *, signals: list[str], now: datetime) -> ModCase:
    """One more refused message on a held case (the first one's text is the excerpt)."""
    case = get_case(session, case_id)
    case.held += 1
    case.signals = sorted({*case.signals, *signals})
    case.updated_at = as_utc(now)
    session.add(case)
    return case


def add_report(
    session: Session,
    *,
    source_key: str,
    room_id: str,
    event_id: str,
    subject: str,
    space: str | None,
    reporter: str,
    reason: str,
    now: datetime,
    synapse_id: int | None = None,
    trusted: bool = False,
) -> tuple[ModCase, bool] | None:
    """Record a report once (``source_key`` dedupes across restarts) on the message's open case;
    returns (case, case created), or None when this report was recorded already. A ``trusted``
    reporter's report counts towards hiding the message and raises the case in the queue; one
    reporter counts once per case however often they report it."""
    if session.get(ModReport, source_key) is not None:
        return None
    words = f"reported by a member: {reason.strip()}" if reason.strip() else "reported by a member"
    case, created = open_case(
        session,
        kind=CaseKind.REPORT,
        room_id=room_id,
        event_id=event_id,
        subject=subject,
        space=space,
        reason=words,
        now=now,
        priority=2,
    )
    again = session.exec(
        select(ModReport).where(ModReport.case_id == case.id, ModReport.reporter == reporter)
    ).first()
    session.add(
        ModReport(
            source_key=source_key,
            synapse_id=synapse_id,
            case_id=case.id,
            reporter=reporter,
            subject=subject,
            reason=reason.strip()[:512],
            trusted=trusted,
            received_at=as_utc(now),
        )
    )
    case.reports += 1
    if trusted and (again is None or not again.trusted):
        case.trusted_reports += 1
        case.priority = max(case.priority, 3)
    session.add(case)
    session.flush()
    return case, created


def last_synapse_report(session: Session, prefix: str = "synapse") -> int:
    """The highest Synapse report ID recorded under ``prefix`` (``synapse`` for event reports,
    ``synapse-user`` for reports of a member): where reading the admin API resumes (0 if none)."""
    q = select(func.max(ModReport.synapse_id)).where(col(ModReport.source_key).startswith(f"{prefix}:"))
    return int(session.exec(q).one() or 0)


def reporter_record(session: Session, reporter: str) -> ReporterRecord:
    """How the cases ``reporter`` reported were decided (each case once)."""
    q = (
        select(ModCase.id, ModCase.status)
        .join(ModReport, col(ModReport.case_id) == col(ModCase.id))
        .where(ModReport.reporter == reporter)
        .distinct()
    )
    statuses = [status for _, status in session.exec(q)]
    return ReporterRecord(
        upheld=statuses.count(CaseStatus.ACTIONED.value), dismissed=statuses.count(CaseStatus.DISMISSED.value)
    )


def hide(session: Session, case_id: str, *, now: datetime) -> ModCase:
    case = get_case(session, case_id)
    case.hidden_at = as_utc(now)
    session.add(case)
    return case


def reports_against(session: Session, user: str) -> int:
    """How many reports name ``user``'s messages, ever."""
    return int(
        session.exec(select(func.count()).select_from(ModReport).where(ModReport.subject == user)).one()
    )


def reporters_of(session: Session, case_id: str) -> list[ModReport]:
    return list(
        session.exec(
            select(ModReport).where(ModReport.case_id == case_id).order_by(col(ModReport.received_at))
        )
    )


def get_case(session: Session, case_id: str) -> ModCase:
    case = session.get(ModCase, normalize_id(case_id, "M"))
    if case is None:
        raise CaseNotFound(f"There is no case {normalize_id(case_id, 'M')}.")
    return case


def case_by_card(session: Session, event_id: str) -> ModCase | None:
    return session.exec(select(ModCase).where(ModCase.card_event_id == event_id)).first()


def open_cases(session: Session, limit: int = 100) -> list[ModCase]:
    """The review queue: highest priority first, then oldest."""
    q = (
        select(ModCase)
        .where(ModCase.status == CaseStatus.OPEN.value)
        .order_by(col(ModCase.priority).desc(), col(ModCase.created_at))
        .limit(limit)
    )
    return list(session.exec(q))


def decide_case(
    session: Session, case_id: str, *, actor: str, status: CaseStatus, decision: str, now: datetime
) -> ModCase:
    case = get_case(session, case_id)
    if case.status != CaseStatus.OPEN.value:
        raise CaseworkError(f"Case {case.id} was {case.status} already by {case.decided_by}.")
    case.status = status.value
    case.decided_by = actor
    case.decided_at = as_utc(now)
    case.decision = decision[:512]
    case.updated_at = as_utc(now)
    session.add(case)
    return case


def excerpt(session: Session, event_id: str) -> str | None:
    """The kept text of a message under review (None once purged or never kept)."""
    row = session.exec(select(FlaggedMessage).where(FlaggedMessage.event_id == event_id)).first()
    return row.body if row is not None else None


# ---------------------------------------------------------------------------------------------
# Sanctions


def earlier_sanctions(session: Session, user: str, kind: SanctionKind) -> int:
    q = (
        select(func.count())
        .select_from(Sanction)
        .where(Sanction.user_id == user, Sanction.kind == kind.value)
    )
    return int(session.exec(q).one())


def add_sanction(
    session: Session,
    *,
    user: str,
    kind: SanctionKind,
    scope: str,
    reason: str,
    by: str,
    now: datetime,
    duration: timedelta | None,
    case_id: str | None = None,
) -> Sanction:
    row = Sanction(
        id=_new_id(session, Sanction, "S"),
        user_id=user,
        kind=kind.value,
        scope=scope,
        reason=reason[:512],
        by=by,
        case_id=case_id,
        created_at=as_utc(now),
        expires_at=as_utc(now + duration) if duration is not None and kind is not SanctionKind.WARN else None,
        ended_at=as_utc(now) if kind is SanctionKind.WARN else None,  # a warning is over once given
        end_reason="given" if kind is SanctionKind.WARN else None,
    )
    session.add(row)
    session.flush()
    return row


def active_sanctions(
    session: Session, now: datetime, *, user: str | None = None, kind: SanctionKind | None = None
) -> list[Sanction]:
    """Sanctions in force at ``now`` (not ended, not past their expiry), oldest first."""
    q = select(Sanction).where(col(Sanction.ended_at).is_(None))
    if user is not None:
        q = q.where(Sanction.user_id == user)
    if kind is not None:
        q = q.where(Sanction.kind == kind.value)
    rows = session.exec(q.order_by(col(Sanction.created_at))).all()
    return [r for r in rows if r.expires_at is None or as_utc(r.expires_at) > as_utc(now)]


def active_mutes(session: Session, now: datetime) -> dict[str, list[ActiveMute]]:
    """Every mute in force, by member (what the gate checks)."""
    out: dict[str, list[ActiveMute]] = {}
    for r in active_sanctions(session, now, kind=SanctionKind.MUTE):
        assert r.expires_at is not None  # mutes always end
        out.setdefault(r.user_id, []).append(ActiveMute(r.id, r.scope, as_utc(r.expires_at), r.reason))
    return out


def due_to_expire(session: Session, now: datetime) -> list[Sanction]:
    """Sanctions past their expiry and not yet ended (the scheduler's sweep ends them)."""
    q = select(Sanction).where(col(Sanction.ended_at).is_(None), col(Sanction.expires_at).is_not(None))
    return [r for r in session.exec(q) if r.expires_at is not None and as_utc(r.expires_at) <= as_utc(now)]


def end_sanction(session: Session, sanction_id: str, *, by: str, reason: str, now: datetime) -> Sanction:
    row = session.get(Sanction, normalize_id(sanction_id, "S"))
    if row is None:
        raise CaseNotFound(f"There is no sanction {normalize_id(sanction_id, 'S')}.")
    if row.ended_at is None:
        row.ended_at = as_utc(now)
        row.ended_by = by
        row.end_reason = reason[:64]
        session.add(row)
    return row


def scope_covers(scope: str, space: str | None) -> bool:
    return scope == ALL_SPACES or (space is not None and scope == space)


# ---------------------------------------------------------------------------------------------
# Appeals


def open_appeal(session: Session, user: str, text: str, *, now: datetime, retention: timedelta) -> Appeal:
    """Appeal the member's most recent mute or ban still in force (or, failing that, their most recent
    sanction of any kind within the last 30 days)."""
    candidates = [s for s in active_sanctions(session, now, user=user) if s.kind != SanctionKind.WARN.value]
    if not candidates:
        since = as_utc(now) - timedelta(days=30)
        candidates = [
            s
            for s in session.exec(
                select(Sanction).where(Sanction.user_id == user).order_by(col(Sanction.created_at))
            )
            if as_utc(s.created_at) >= since
        ]
    if not candidates:
        raise CaseworkError("You have no recent moderation decision to appeal.")
    sanction = candidates[-1]
    pending = session.exec(
        select(Appeal).where(Appeal.sanction_id == sanction.id, Appeal.status == AppealStatus.OPEN.value)
    ).first()
    if pending is not None:
        raise CaseworkError(f"Your appeal {pending.id} is already with the moderators; they will reply here.")
    appeal = Appeal(
        id=_new_id(session, Appeal, "A"),
        sanction_id=sanction.id,
        user_id=user,
        text=text.strip()[:4000],
        created_at=as_utc(now),
        purge_after=as_utc(now + retention),
    )
    session.add(appeal)
    session.flush()
    return appeal


def get_appeal(session: Session, appeal_id: str) -> Appeal:
    appeal = session.get(Appeal, normalize_id(appeal_id, "A"))
    if appeal is None:
        raise CaseNotFound(f"There is no appeal {normalize_id(appeal_id, 'A')}.")
    return appeal


def decide_appeal(
    session: Session, appeal_id: str, *, actor: str, lift: bool, note: str, now: datetime
) -> tuple[Appeal, Sanction]:
    """Uphold or lift; the moderator who imposed the sanction may not decide its appeal."""
    appeal = get_appeal(session, appeal_id)
    if appeal.status != AppealStatus.OPEN.value:
        raise CaseworkError(
            f"Appeal {appeal.id} was decided already ({appeal.status}, by {appeal.decided_by})."
        )
    sanction = session.get(Sanction, appeal.sanction_id)
    assert sanction is not None  # foreign key
    if sanction.by == actor:
        raise NotPermitted(
            f"You imposed {sanction.id}, so another moderator must decide appeal {appeal.id}: a second pair of eyes."
        )
    appeal.status = (AppealStatus.LIFTED if lift else AppealStatus.UPHELD).value
    appeal.decided_by = actor
    appeal.decided_at = as_utc(now)
    appeal.note = note.strip()[:1000] or None
    session.add(appeal)
    if lift:
        end_sanction(session, sanction.id, by=actor, reason="appeal", now=now)
    return appeal, sanction


def appeals_waiting(session: Session, *, now: datetime, longer_than: timedelta) -> list[Appeal]:
    """Open appeals older than ``longer_than`` not reminded about within that time either."""
    cutoff = as_utc(now) - longer_than
    rows = session.exec(select(Appeal).where(Appeal.status == AppealStatus.OPEN.value)).all()
    return [
        a
        for a in rows
        if as_utc(a.created_at) <= cutoff and (a.reminded_at is None or as_utc(a.reminded_at) <= cutoff)
    ]


def purge_appeal_text(session: Session, now: datetime) -> int:
    """Forget members' appeal words past their retention (the decision stays)."""
    result = session.execute(
        update(Appeal).where(col(Appeal.purge_after) <= as_utc(now), col(Appeal.text) != "").values(text="")
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------------------------
# Notes and a member's file


def add_note(session: Session, user: str, *, by: str, text: str, now: datetime) -> ModNote:
    """A moderator's note; ``#words`` in it become labels."""
    text = text.strip()
    if not text:
        raise CaseworkError("A note needs some text.")
    note = ModNote(
        user_id=user,
        by=by,
        text=text[:2000],
        labels=sorted({m.lower() for m in _LABEL.findall(text)}),
        created_at=as_utc(now),
    )
    session.add(note)
    session.flush()
    return note


@dataclass
class MemberFile:
    """Everything moderation knows of one member, across spaces (no message text)."""

    user_id: str
    cases: list[ModCase] = field(default_factory=list)
    reports_against: int = 0
    sanctions: list[Sanction] = field(default_factory=list)
    appeals: list[Appeal] = field(default_factory=list)
    notes: list[ModNote] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)  # disposition kind -> how many messages


def member_file(session: Session, user: str) -> MemberFile:
    f = MemberFile(user)
    f.cases = list(
        session.exec(select(ModCase).where(ModCase.subject == user).order_by(col(ModCase.created_at)))
    )
    f.reports_against = reports_against(session, user)
    f.sanctions = list(
        session.exec(select(Sanction).where(Sanction.user_id == user).order_by(col(Sanction.created_at)))
    )
    f.appeals = list(
        session.exec(select(Appeal).where(Appeal.user_id == user).order_by(col(Appeal.created_at)))
    )
    f.notes = list(
        session.exec(select(ModNote).where(ModNote.user_id == user).order_by(col(ModNote.created_at)))
    )
    for row in session.exec(select(ModerationDecision).where(ModerationDecision.sender == user)):
        for kind in {d.get("kind") for d in row.dispositions}:
            if isinstance(kind, str) and kind != "allow":
                f.decisions[kind] = f.decisions.get(kind, 0) + 1
    return f


# ---------------------------------------------------------------------------------------------
# The audit log of moderator actions


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    now: datetime,
    subject: str | None = None,
    case_id: str | None = None,
    sanction_id: str | None = None,
    appeal_id: str | None = None,
    detail: str = "",
) -> ModAudit:
    row = ModAudit(
        at=as_utc(now),
        actor=actor,
        action=action,
        subject=subject,
        case_id=case_id,
        sanction_id=sanction_id,
        appeal_id=appeal_id,
        detail=detail[:1000],
    )
    session.add(row)
    return row


def audit_since(session: Session, since: datetime, limit: int = 5000) -> list[ModAudit]:
    """Moderator actions since ``since``, newest first."""
    q = (
        select(ModAudit)
        .where(col(ModAudit.at) >= as_utc(since))
        .order_by(col(ModAudit.at).desc(), col(ModAudit.id).desc())
    )
    return list(session.exec(q.limit(limit)))
