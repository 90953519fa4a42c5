"""Storing decisions and flagged messages. Pure functions over a SQLModel ``Session``; the caller
commits and passes ``now`` (domain code never reads the clock)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from moderation.models import FlaggedMessage, ModerationDecision
from moderation.types import Message, Signal, Verdict

SOURCES = ("gate", "rescreen")


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("aware datetimes only")
    return dt.astimezone(UTC)


def signal_record(sig: Signal) -> dict[str, Any]:
    """What is kept of a signal: label, score, rule, tier, category, evidence offsets. No text."""
    return {
        "detector": sig.detector,
        "label": sig.label,
        "score": round(float(sig.score), 4),
        "rule": sig.rule,
        "tier": sig.tier,
        "category": sig.category,
        "action": sig.action,
        "spans": [[s.start, s.end] for s in sig.evidence],
    }


def save_decision(
    session: Session, message: Message, verdict: Verdict, *, now: datetime, source: str = "gate"
) -> ModerationDecision:
    """Insert or replace the decision for ``verdict.event_id`` (a rescreen may follow a gate timeout)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    fields: dict[str, Any] = {
        "room_id": message.room_id,
        "sender": message.sender,
        "profile": message.profile,
        "dispositions": [{k: v for k, v in asdict(d).items() if v is not None} for d in verdict.dispositions],
        "signals": [signal_record(s) for s in verdict.signals],
        "timings": {k: round(v, 6) for k, v in verdict.timings.items()},
        "errors": dict(verdict.errors),
        "decided_at": _utc(now),
        "source": source,
    }
    row = session.get(ModerationDecision, verdict.event_id)
    if row is None:
        row = ModerationDecision(event_id=verdict.event_id, **fields)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    session.add(row)
    session.flush()
    return row


def get_decision(session: Session, event_id: str) -> ModerationDecision | None:
    """The stored decision for an event, if it was screened already."""
    return session.get(ModerationDecision, event_id)


def mark_acted(session: Session, event_id: str, *, now: datetime) -> None:
    """Record that the after-delivery dispositions were carried out."""
    row = session.get(ModerationDecision, event_id)
    if row is not None:
        row.acted_at = _utc(now)
        session.add(row)


def flag(
    session: Session,
    message: Message,
    reason: str,
    *,
    now: datetime,
    retention: timedelta = timedelta(days=30),
) -> FlaggedMessage:
    """Queue a message for human review. The text is kept only until ``now + retention``."""
    return keep_text(
        session,
        event_id=message.event_id,
        room_id=message.room_id,
        sender=message.sender,
        body=message.body,
        reason=reason,
        now=now,
        retention=retention,
    )


def keep_text(
    session: Session,
    *,
    event_id: str,
    room_id: str,
    sender: str,
    body: str,
    reason: str,
    now: datetime,
    retention: timedelta,
) -> FlaggedMessage:
    """Keep a message's text for the moderators reviewing it (once per event), until ``now + retention``."""
    existing = session.exec(select(FlaggedMessage).where(FlaggedMessage.event_id == event_id)).first()
    if existing is not None:
        return existing
    row = FlaggedMessage(
        event_id=event_id,
        room_id=room_id,
        sender=sender,
        body=body,
        reason=reason[:512],
        status="open",
        created_at=_utc(now),
        purge_after=_utc(now + retention),
    )
    session.add(row)
    session.flush()
    return row


def open_flags(session: Session, room_id: str | None = None) -> list[FlaggedMessage]:
    """Flagged messages not yet reviewed, oldest first."""
    q = select(FlaggedMessage).where(FlaggedMessage.status == "open")
    if room_id is not None:
        q = q.where(FlaggedMessage.room_id == room_id)
    return list(session.exec(q.order_by(col(FlaggedMessage.id))))


def purge_expired(session: Session, now: datetime) -> int:
    """Delete flagged messages (and their text) whose ``purge_after`` has passed; returns how many."""
    result = session.execute(delete(FlaggedMessage).where(col(FlaggedMessage.purge_after) <= _utc(now)))
    return int(getattr(result, "rowcount", 0) or 0)
