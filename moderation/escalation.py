"""Crisis escalation: a pure state machine, its tables and a transactional notification outbox.

A crisis signal becomes an :class:`Escalation` (one per person per room per *episode*: further
messages from the same person in the same room while one is active are merged into it, with their
evidence attached). Its lifecycle::

    open ──► acknowledged ──► resolved(outcome)
      │            ▲
      └─► repaged ─┘   (repaged ─► repaged again while the SLA keeps passing unacknowledged)

``resolved`` is terminal. Resolving an ``open``/``repaged`` escalation acknowledges it first (two
audit rows), so a clinician can close a false alarm in one step. ``merged`` is an audited event,
not a status: the merged-into escalation keeps its status.

Every function that changes state takes a ``Session`` and ``now`` and works inside the caller's
transaction: it appends audit rows and enqueues :class:`Notification` outbox rows in the same
transaction, and never commits. The bridge commits, *then* a notifier delivers the pending
notifications and marks them sent, so a crash between any two steps loses nothing; a resend after a
crash reuses the notification's deterministic ``txn_id``, which the homeserver deduplicates.

Nothing here reads the clock or the environment or imports nio/FastAPI/APScheduler.

Bridge recipe (one transaction each, e.g. through ``bridge.db.run_db``)::

    esc, created = raise_escalation(s, room_id=..., sender=..., event_id=..., severity="imminent",
                                    category="plan", signals=verdict.signals, excerpt=body,
                                    space="grief", locale=None, now=now, sla=sla,
                                    on_call=on_call(rota, now), webhook=bool(settings.webhook_url))
    # commit; then poke the notifier.
    for n in pending_notifications(s, now):          # notifier loop
        esc = s.get(Escalation, n.escalation_id)
        kind staff_alert      -> send staff_alert_content(esc, mentions=n.payload["mentions"], ...)
                                 to the staff room with txn_id=n.txn_id
        kind staff_update     -> send status_edit_content(esc, original_alert_event_id=esc.alert_event_id,
                                 mentions=n.payload["mentions"], ...)
        kind repage           -> send repage_content(esc, mentions=n.payload["mentions"],
                                 reply_to=esc.alert_event_id, ...)
        kind member_resources -> DM n.payload["user_id"] with
                                 member_resources_content(n.payload["locale"], catalog)
        kind webhook          -> POST webhook_body(n) with header
                                 {WEBHOOK_SIGNATURE_HEADER: sign_webhook(secret, body, int(ts))}
        then mark_sent(s, n.id, result_event_id=..., now=now)   (or mark_failed(..., retry=...))
    for esc in due_for_repage(s, now): repage(s, esc.id, now=now, sla=sla, backup=..., clinicians=...)
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import JSON, DateTime, Index, Text, event, func, or_, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, col, select

from config.ids import EventID, RoomID, UserID
from moderation.types import Signal

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

    from config.resources import CrisisResources

__all__ = [
    "ACTIVE_STATUSES",
    "OUTCOME_LABELS",
    "UNACKNOWLEDGED_STATUSES",
    "SYSTEM_ACTOR",
    "WEBHOOK_SIGNATURE_HEADER",
    "AuditImmutable",
    "Escalation",
    "EscalationAudit",
    "EscalationError",
    "EscalationEvidence",
    "EscalationNotFound",
    "EscalationSettings",
    "EscalationTrail",
    "IllegalTransition",
    "NotStaff",
    "Notification",
    "NotificationKind",
    "NotificationStatus",
    "Outcome",
    "RetryPolicy",
    "Severity",
    "SlaPolicy",
    "Status",
    "UTCDateTime",
    "acknowledge",
    "active_deadlines",
    "add_note",
    "category_words",
    "check_transition",
    "due_for_repage",
    "escalation_summary",
    "find_by_notice_event",
    "get_escalation",
    "get_escalation_with_trail",
    "is_ack_reaction",
    "list_escalations",
    "mark_failed",
    "mark_sent",
    "matrix_to_event",
    "member_resources_content",
    "next_notification_at",
    "normalize_escalation_id",
    "parse_outcome",
    "pending_notifications",
    "person",
    "purge_excerpts",
    "raise_escalation",
    "region_lines_content",
    "repage",
    "repage_content",
    "resolve",
    "sign_webhook",
    "staff_alert_content",
    "status_edit_content",
    "verify_webhook",
    "webhook_body",
]

# ---------------------------------------------------------------------------------------------
# Vocabulary


class Severity(StrEnum):
    """Crisis risk tier, as the crisis detector reports it (``none`` never escalates)."""

    MODERATE = "moderate"
    HIGH = "high"
    IMMINENT = "imminent"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.MODERATE: 1, Severity.HIGH: 2, Severity.IMMINENT: 3}


class Status(StrEnum):
    OPEN = "open"
    REPAGED = "repaged"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


ACTIVE_STATUSES: tuple[Status, ...] = (Status.OPEN, Status.REPAGED, Status.ACKNOWLEDGED)
UNACKNOWLEDGED_STATUSES: tuple[Status, ...] = (Status.OPEN, Status.REPAGED)


class Outcome(StrEnum):
    CONTACTED = "contacted"
    REFERRED_EMERGENCY = "referred_emergency"
    FALSE_ALARM = "false_alarm"
    NO_RESPONSE = "no_response"
    HANDED_TO_OTHER_SERVICE = "handed_to_other_service"
    OTHER = "other"


_OUTCOME_ALIASES = {
    "referred": Outcome.REFERRED_EMERGENCY,
    "emergency": Outcome.REFERRED_EMERGENCY,
    "referred_to_emergency_services": Outcome.REFERRED_EMERGENCY,
    "false": Outcome.FALSE_ALARM,
    "handed_over": Outcome.HANDED_TO_OTHER_SERVICE,
    "handed": Outcome.HANDED_TO_OTHER_SERVICE,
    "other_service": Outcome.HANDED_TO_OTHER_SERVICE,
    "noresponse": Outcome.NO_RESPONSE,
}

OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.CONTACTED: "contacted the person",
    Outcome.REFERRED_EMERGENCY: "referred to emergency services",
    Outcome.FALSE_ALARM: "false alarm",
    Outcome.NO_RESPONSE: "no response from the person",
    Outcome.HANDED_TO_OTHER_SERVICE: "handed to another service",
    Outcome.OTHER: "other",
}


class NotificationKind(StrEnum):
    STAFF_ALERT = "staff_alert"  # the m.notice in the staff room (its event id becomes alert_event_id)
    STAFF_UPDATE = "staff_update"  # an m.replace edit of that notice with the new status
    REPAGE = "repage"  # a new notice (reply to the alert) mentioning the backup rota
    WEBHOOK = "webhook"  # a signed JSON POST to the configured URL
    MEMBER_RESOURCES = "member_resources"  # the private, warm message with crisis resources
    CARE_JOIN = "care_join"  # a clinician took the case: invite them to the care room, tell the person
    CARE_REPLY = "care_reply"  # the person replied in the care room before anyone took it: page on call
    CARE_CLOSED = "care_closed"  # the case was resolved: tell the person kindly


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after RetryPolicy.max_attempts (never for staff kinds by default)


SYSTEM_ACTOR = "hearth:system"
EXCERPT_MAX_CHARS = 280
WEBHOOK_SIGNATURE_HEADER = "X-Hearth-Signature"


# ---------------------------------------------------------------------------------------------
# Errors


class EscalationError(Exception):
    """Base class; ``str(err)`` is a human sentence fit to show a clinician."""


class IllegalTransition(EscalationError):
    """A transition the state machine does not allow; ``reason`` says why in plain words."""

    def __init__(self, escalation_id: str, from_status: str, to_status: str, reason: str) -> None:
        super().__init__(reason)
        self.escalation_id = escalation_id
        self.from_status = from_status
        self.to_status = to_status
        self.reason = reason


class NotStaff(EscalationError):
    """The actor is not in the staff list allowed to act on escalations."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"{actor} is not listed as Hearth staff, so they cannot act on escalations.")
        self.actor = actor


class EscalationNotFound(EscalationError, LookupError):
    def __init__(self, escalation_id: str) -> None:
        super().__init__(f"There is no escalation {escalation_id}.")
        self.escalation_id = escalation_id


class AuditImmutable(EscalationError):
    """Raised when code tries to change or delete an audit row (the table is append-only)."""


# ---------------------------------------------------------------------------------------------
# Policies (plain config models; the bridge builds them from settings / config/escalation.toml)


class SlaPolicy(BaseModel):
    """Seconds allowed, per tier, before an unacknowledged escalation re-pages.

    Defaults follow issue 5: imminent 2 min, high 15 min, moderate 60 min.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    imminent: int = PydanticField(default=120, gt=0)
    high: int = PydanticField(default=900, gt=0)
    moderate: int = PydanticField(default=3600, gt=0)

    def seconds_for(self, severity: str) -> int:
        return int(getattr(self, Severity(severity).value))

    def deadline(self, severity: str, now: datetime) -> datetime:
        """When an escalation of ``severity`` raised (or re-paged) at ``now`` is due."""
        return _utc(now) + timedelta(seconds=self.seconds_for(severity))


class RetryPolicy(BaseModel):
    """Exponential backoff for failed deliveries: ``base * factor**(attempts-1)``, capped.

    ``max_attempts=None`` retries for ever (the default: a crisis alert is never given up on);
    a webhook may set a limit, after which the notification is marked ``failed``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_seconds: float = PydanticField(default=2.0, gt=0)
    factor: float = PydanticField(default=2.0, ge=1)
    max_seconds: float = PydanticField(default=300.0, gt=0)
    max_attempts: int | None = PydanticField(default=None, gt=0)

    def delay(self, attempts: int) -> timedelta:
        """Delay before the next try after ``attempts`` failed attempts (``attempts >= 1``)."""
        exp = max(attempts - 1, 0)
        seconds = min(self.base_seconds * self.factor ** min(exp, 64), self.max_seconds)
        return timedelta(seconds=seconds)


class EscalationSettings(BaseModel):
    """Everything tunable about escalation, as read from ``config/escalation.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sla: SlaPolicy = SlaPolicy()
    ack_reactions: tuple[str, ...] = ("✅", "👍", "👀")
    staff_retry: RetryPolicy = RetryPolicy()
    webhook_retry: RetryPolicy = RetryPolicy(base_seconds=5, max_seconds=600, max_attempts=12)
    excerpt_retention_days: int = PydanticField(default=30, gt=0)


def is_ack_reaction(key: str, reactions: Iterable[str]) -> bool:
    """Whether a reaction ``key`` is one of ``reactions``, ignoring emoji variation selectors."""

    def norm(s: str) -> str:
        return s.replace("\ufe0f", "").replace("\ufe0e", "").strip()

    k = norm(key)
    return any(k == norm(r) for r in reactions)


# ---------------------------------------------------------------------------------------------
# Column types


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; refuses naive values, returns aware UTC on both databases.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text (its driver drops the offset),
    which is made aware again on read, so comparisons behave the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass aware datetimes (UTC) only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


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
    # The care room (moderation/care.py): the bot's private room with the person, where their
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
        when = _fmt_time(esc.acknowledged_at) if esc.acknowledged_at else "earlier"
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
# Helpers


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt!r}: pass aware datetimes only")
    return dt.astimezone(UTC)


_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def _new_id(session: Session) -> str:
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


def _excerpt(text_: str) -> str:
    t = " ".join(text_.split())
    if len(t) <= EXCERPT_MAX_CHARS:
        return t
    return t[: EXCERPT_MAX_CHARS - 1].rstrip() + "…"


def _signal_json(sig: Signal | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(sig, Signal):
        d: dict[str, Any] = asdict(sig)
        d["evidence"] = [[s.start, s.end] for s in sig.evidence]
        return d
    if is_dataclass(sig) and not isinstance(sig, type):  # pragma: no cover - other dataclasses
        return asdict(sig)
    return dict(sig)


def _audit(
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


def _enqueue(
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


def _webhook(session: Session, esc: Escalation, event_type: str, now: datetime) -> Notification:
    body = {"type": event_type, "at": now.isoformat(), "escalation": escalation_summary(esc, detailed=True)}
    return _enqueue(session, esc, NotificationKind.WEBHOOK, body, now)


def _dedupe(users: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(u for u in users if u))


def _load(session: Session, esc_id: str, *, lock: bool = True) -> Escalation:
    stmt = select(Escalation).where(Escalation.id == normalize_escalation_id(esc_id))
    if lock:
        stmt = stmt.with_for_update()
    esc = session.exec(stmt).first()
    if esc is None:
        raise EscalationNotFound(esc_id)
    return esc


def _require_staff(actor: str, staff: Collection[str]) -> None:
    if actor not in staff:
        raise NotStaff(actor)


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
    now = _utc(now)
    sev = Severity(severity)
    mentions = _dedupe(on_call)
    sig_json = [_signal_json(s) for s in signals]

    seen = session.exec(select(EscalationEvidence).where(EscalationEvidence.event_id == event_id)).first()
    if seen is not None:
        return _load(session, seen.escalation_id, lock=False), False

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
        esc = active
        old = Severity(esc.severity)
        upgraded = sev.rank > old.rank
        note = f"message {event_id} ({sev.value}, {category})"
        if upgraded:
            esc.severity = sev.value
            esc.category = category
            esc.excerpt = _excerpt(excerpt)
            note += f"; severity {old.value} -> {sev.value}"
            if esc.status in UNACKNOWLEDGED_STATUSES:
                esc.sla_deadline = min(esc.sla_deadline, sla.deadline(sev, now))
        esc.latest_event_id = event_id
        esc.message_count += 1
        esc.updated_at = now
        session.add(esc)
        session.add(
            EscalationEvidence(
                escalation_id=esc.id,
                event_id=event_id,
                severity=sev.value,
                category=category,
                signals=sig_json,
                created_at=now,
            )
        )
        _audit(session, esc, "merged", from_status=esc.status, actor=SYSTEM_ACTOR, now=now, note=note)
        update_mentions: list[str] = []
        if upgraded:
            update_mentions = _dedupe([*mentions, esc.acknowledged_by or ""])
        _enqueue(
            session,
            esc,
            NotificationKind.STAFF_UPDATE,
            {"reason": "merged", "event_id": event_id, "upgraded": upgraded, "mentions": update_mentions},
            now,
        )
        if upgraded and webhook:
            _webhook(session, esc, "escalation.upgraded", now)
        session.flush()
        return esc, False

    esc = Escalation(
        id=_new_id(session),
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
        excerpt=_excerpt(excerpt),
        locale=locale,
    )
    session.add(esc)
    session.flush()
    session.add(
        EscalationEvidence(
            escalation_id=esc.id,
            event_id=event_id,
            severity=sev.value,
            category=category,
            signals=sig_json,
            created_at=now,
        )
    )
    _audit(
        session,
        esc,
        "opened",
        from_status=None,
        actor=SYSTEM_ACTOR,
        now=now,
        note=f"message {event_id} ({sev.value}, {category})",
    )
    _enqueue(session, esc, NotificationKind.STAFF_ALERT, {"mentions": mentions}, now)
    _enqueue(
        session,
        esc,
        NotificationKind.MEMBER_RESOURCES,
        {"user_id": sender, "room_id": room_id, "locale": locale},
        now,
    )
    if webhook:
        _webhook(session, esc, "escalation.opened", now)
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
    _require_staff(actor, staff)
    now = _utc(now)
    esc = _load(session, esc_id)
    _acknowledge(session, esc, actor, now, note)
    if webhook:
        _webhook(session, esc, "escalation.acknowledged", now)
    session.flush()
    return esc


def _acknowledge(session: Session, esc: Escalation, actor: str, now: datetime, note: str | None) -> None:
    check_transition(esc, Status.ACKNOWLEDGED)
    frm = esc.status
    esc.status = Status.ACKNOWLEDGED.value
    esc.acknowledged_by = actor
    esc.acknowledged_at = now
    esc.updated_at = now
    session.add(esc)
    _audit(session, esc, "acknowledged", from_status=frm, actor=actor, now=now, note=note)
    _enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "acknowledged", "mentions": []}, now)


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
    _require_staff(actor, staff)
    now = _utc(now)
    out = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome)
    esc = _load(session, esc_id)
    if esc.status in UNACKNOWLEDGED_STATUSES:
        check_transition(esc, Status.ACKNOWLEDGED)
        frm = esc.status
        esc.status = Status.ACKNOWLEDGED.value
        esc.acknowledged_by = actor
        esc.acknowledged_at = now
        _audit(
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
    _audit(session, esc, "resolved", from_status=frm, actor=actor, now=now, note=_join_note(out, note))
    _enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "resolved", "mentions": []}, now)
    if esc.care_room_id and (esc.taken_by or esc.care_replies):  # a conversation happened: close it kindly
        _enqueue(session, esc, NotificationKind.CARE_CLOSED, {"by": actor}, now)
    if webhook:
        _webhook(session, esc, "escalation.resolved", now)
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
    _require_staff(actor, staff)
    now = _utc(now)
    if not note.strip():
        raise ValueError("A note cannot be empty.")
    esc = _load(session, esc_id, lock=False)
    row = _audit(session, esc, "note", from_status=esc.status, actor=actor, now=now, note=note.strip())
    session.flush()
    return row


def due_for_repage(session: Session, now: datetime) -> list[Escalation]:
    """Unacknowledged escalations whose SLA deadline has passed, most overdue first."""
    now = _utc(now)
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
    now = _utc(now)
    esc = _load(session, esc_id)
    check_transition(esc, Status.REPAGED)
    if esc.sla_deadline > now:
        raise IllegalTransition(
            esc.id,
            esc.status,
            Status.REPAGED.value,
            f"{esc.id} is not due yet (deadline {_fmt_time(esc.sla_deadline)}).",
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
    mentions = _dedupe(mentions)
    _audit(
        session,
        esc,
        "repaged",
        from_status=frm,
        actor=SYSTEM_ACTOR,
        now=now,
        note=f"re-page #{esc.repage_count}: SLA passed unacknowledged; paging {', '.join(mentions) or 'nobody'}",
    )
    out = [
        _enqueue(
            session,
            esc,
            NotificationKind.REPAGE,
            {"mentions": mentions, "repage": esc.repage_count},
            now,
        ),
        _enqueue(session, esc, NotificationKind.STAFF_UPDATE, {"reason": "repaged", "mentions": []}, now),
    ]
    if webhook:
        out.append(_webhook(session, esc, "escalation.repaged", now))
    session.flush()
    return out


def pending_notifications(
    session: Session, now: datetime, *, limit: int = 100, escalation_id: str | None = None
) -> list[Notification]:
    """Notifications due for (re)delivery, oldest first (only ``escalation_id``'s when given).

    A ``staff_update`` is held back until its escalation's alert has been delivered (it edits that
    event); the alert itself always renders the current status, so nothing is lost meanwhile.
    """
    now = _utc(now)
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
    now = _utc(now)
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
    now = _utc(now)
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
    return _load(session, esc_id, lock=False)


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
    esc = _load(session, esc_id, lock=False)
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
    now = _utc(now)
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
        _audit(session, esc, "excerpt_purged", from_status=esc.status, actor=SYSTEM_ACTOR, now=now)
    session.flush()
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Rendering (pure: Matrix event contents and webhook bodies)

_SEVERITY_BADGE = {
    Severity.IMMINENT: "🔴 IMMINENT",
    Severity.HIGH: "🟠 HIGH",
    Severity.MODERATE: "🟡 MODERATE",
}


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


def matrix_to_event(room_id: str, event_id: str, server_name: str | None = None) -> str:
    """``https://matrix.to/#/<room_id>/<event_id>`` (with ``?via=`` when a server is known)."""
    link = f"https://matrix.to/#/{quote(room_id, safe='!:@$.')}/{quote(event_id, safe='!:@$.')}"
    return link + (f"?via={quote(server_name, safe='.:')}" if server_name else "")


# What staff read: categories in words, never identifiers.
CATEGORY_WORDS: dict[str, str] = {
    "ideation": "thoughts of suicide",
    "plan_or_means": "plan or means",
    "attempt_in_progress": "attempt in progress",
    "self_harm": "self-harm",
    "harm_to_others": "may harm someone else",
    "abuse_disclosure": "being harmed by someone",
    "concern_for_other": "worried about someone else",
}


def category_words(category: str) -> str:
    """``plan_or_means`` -> ``plan or means``; an unknown category reads with its underscores as spaces."""
    return CATEGORY_WORDS.get(category, category.replace("_", " "))


def person(user_id: str | None, names: Mapping[str, str]) -> str:
    """``Dr Ana Ruiz (@ana:localhost)`` when a display name is known, else the bare Matrix ID."""
    if not user_id:
        return ""
    name = names.get(user_id)
    return f"{name} ({user_id})" if name and name != user_id else user_id


def _pill(user_id: str, names: Mapping[str, str] | None = None) -> str:
    label = (names or {}).get(user_id) or user_id
    return f'<a href="https://matrix.to/#/{quote(user_id, safe="@:.")}">{html.escape(label)}</a>'


def _fmt_time(dt: datetime, tz: tzinfo = UTC) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _alone(esc: Escalation, tz: tzinfo) -> str:
    if esc.left_alone_at is None:
        return ""
    return f" · the person asked to be left alone at {_fmt_time(esc.left_alone_at, tz)}"


def _status_line(esc: Escalation, tz: tzinfo, names: Mapping[str, str] | None = None) -> str:
    names = names or {}
    st = Status(esc.status)
    if st is Status.OPEN:
        return "OPEN: awaiting acknowledgement" + _alone(esc, tz)
    if st is Status.REPAGED:
        return f"RE-PAGED ×{esc.repage_count}: still unacknowledged" + _alone(esc, tz)
    if st is Status.ACKNOWLEDGED and esc.taken_by:
        when = _fmt_time(esc.taken_at, tz) if esc.taken_at else ""
        return f"WITH {person(esc.taken_by, names)} in the care room since {when}{_alone(esc, tz)}"
    if st is Status.ACKNOWLEDGED:
        when = _fmt_time(esc.acknowledged_at, tz) if esc.acknowledged_at else ""
        return f"ACKNOWLEDGED by {person(esc.acknowledged_by, names)} at {when}{_alone(esc, tz)}"
    label = OUTCOME_LABELS.get(Outcome(esc.outcome), esc.outcome) if esc.outcome else ""
    when = _fmt_time(esc.resolved_at, tz) if esc.resolved_at else ""
    return f"RESOLVED ({label}) by {person(esc.resolved_by, names)} at {when}"


def _alert_parts(
    esc: Escalation,
    *,
    room_name: str | None,
    space_name: str | None,
    mentions: Sequence[str],
    server_name: str | None,
    tz: tzinfo,
    ack_hint: str,
    heading: str,
    names: Mapping[str, str],
) -> tuple[str, str]:
    sev = Severity(esc.severity)
    category = category_words(esc.category)
    member = person(esc.sender, names)
    badge = _SEVERITY_BADGE[sev]
    where = room_name or esc.room_id
    if space_name or esc.space:
        where = f"{space_name or esc.space} › {where}"
    link = matrix_to_event(esc.room_id, esc.first_event_id, server_name)
    created = _fmt_time(esc.created_at, tz)
    status = _status_line(esc, tz, names)
    excerpt = esc.excerpt or "(excerpt purged)"
    more = f" (+{esc.message_count - 1} more)" if esc.message_count > 1 else ""
    unacked = esc.status in UNACKNOWLEDGED_STATUSES
    hint = f"React {ack_hint} or send !ack {esc.id} to acknowledge." if unacked else ""

    plain = [
        f"{heading} {esc.id}: {badge} · {category}",
        f"Where: {where}",
        f"Member: {member}",
        f"Raised: {created}",
        f"Message{more}: “{excerpt}”",
        f"Status: {status}",
        f"Open: {link}",
    ]
    if mentions:
        plain.append("On call: " + ", ".join(person(u, names) for u in mentions))
    if hint:
        plain.append(hint)

    e = html.escape
    rows = [
        ("Where", e(where)),
        ("Member", e(member)),
        ("Raised", e(created)),
        (f"Message{e(more)}", f"<blockquote>{e(excerpt)}</blockquote>"),
        ("Status", f"<b>{e(status)}</b>"),
    ]
    parts = [f"<h4>{e(heading)} {e(esc.id)}: {e(badge)} · {e(category)}</h4>", "<ul>"]
    parts += [f"<li><b>{k}:</b> {v}</li>" for k, v in rows]
    parts.append("</ul>")
    parts.append(f'<p><a href="{e(link)}">Open the message in its room</a></p>')
    if mentions:
        parts.append("<p>On call: " + ", ".join(_pill(u, names) for u in mentions) + "</p>")
    if hint:
        parts.append(f"<p>React {e(ack_hint)} or send <code>!ack {e(esc.id)}</code> to acknowledge.</p>")
    return "\n".join(plain), "".join(parts)


def staff_alert_content(
    esc: Escalation,
    *,
    room_name: str | None = None,
    space_name: str | None = None,
    mentions: Sequence[UserID | str] = (),
    server_name: str | None = None,
    tz: tzinfo = UTC,
    ack_hint: str = "✅",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The staff-room ``m.text`` for an escalation: readable HTML summary (tier, category, space
    and room, time, escaped excerpt, matrix.to link), ``m.mentions`` of the on-call clinician(s),
    pills in the HTML, and ``org.hearth.escalation`` (see :func:`escalation_summary`)."""
    users = _dedupe(mentions)
    body, formatted = _alert_parts(
        esc,
        room_name=room_name,
        space_name=space_name,
        mentions=users,
        server_name=server_name,
        tz=tz,
        ack_hint=ack_hint,
        heading="Crisis escalation",
        names=names or {},
    )
    return {
        # m.text, not m.notice: Synapse's default .m.rule.suppress_notices comes before
        # .m.rule.is_user_mention, so a notice would never ring the clinician's phone
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {"user_ids": users},
        "org.hearth.escalation": escalation_summary(esc),
    }


def status_edit_content(
    esc: Escalation,
    *,
    original_alert_event_id: EventID | str,
    room_name: str | None = None,
    space_name: str | None = None,
    mentions: Sequence[UserID | str] = (),
    server_name: str | None = None,
    tz: tzinfo = UTC,
    ack_hint: str = "✅",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An ``m.replace`` edit of the alert carrying the current status (in the text and in
    ``org.hearth.escalation`` at both levels). ``mentions`` are *newly* mentioned users only (e.g. a
    severity upgrade); plain status edits ping nobody."""
    new = staff_alert_content(
        esc,
        room_name=room_name,
        space_name=space_name,
        mentions=mentions,
        server_name=server_name,
        tz=tz,
        ack_hint=ack_hint,
        names=names,
    )
    return {
        "msgtype": "m.notice",
        "body": "* " + new["body"],
        "format": "org.matrix.custom.html",
        "formatted_body": "* " + new["formatted_body"],
        "m.mentions": new["m.mentions"],
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_alert_event_id},
        "org.hearth.escalation": escalation_summary(esc),
    }


def repage_content(
    esc: Escalation,
    *,
    mentions: Sequence[UserID | str],
    reply_to: EventID | str | None = None,
    room_name: str | None = None,
    space_name: str | None = None,
    server_name: str | None = None,
    tz: tzinfo = UTC,
    ack_hint: str = "✅",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A fresh ``m.notice`` re-paging an unacknowledged escalation (a reply to the alert when
    ``reply_to`` is known), mentioning the backup rota (and every clinician for imminent)."""
    users = _dedupe(mentions)
    overdue = f"Re-page #{esc.repage_count}: not acknowledged within its SLA."
    body, formatted = _alert_parts(
        esc,
        room_name=room_name,
        space_name=space_name,
        mentions=users,
        server_name=server_name,
        tz=tz,
        ack_hint=ack_hint,
        heading="⏰ RE-PAGE",
        names=names or {},
    )
    content: dict[str, Any] = {
        "msgtype": "m.text",  # rings the mentioned clinicians (see staff_alert_content)
        "body": f"{overdue}\n{body}",
        "format": "org.matrix.custom.html",
        "formatted_body": f"<p><b>{html.escape(overdue)}</b></p>{formatted}",
        "m.mentions": {"user_ids": users},
        "org.hearth.escalation": escalation_summary(esc),
    }
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def _service_items(services: Sequence[Any]) -> tuple[list[str], list[str]]:
    lines_plain: list[str] = []
    lines_html: list[str] = []
    for svc in services:
        how = svc.how_to_reach()
        lines_plain.append(f"• {svc.name}: {how}" + (f" ({svc.hours})" if svc.hours else ""))
        url_only = bool(svc.url and not (svc.phone or svc.text))
        how_html = (
            f'visit <a href="{html.escape(svc.url)}">{html.escape(svc.url)}</a>'
            if url_only
            else html.escape(how)
        )
        link = (
            f' · <a href="{html.escape(svc.url)}">{html.escape(svc.url)}</a>'
            if svc.url and not url_only
            else ""
        )
        hours = f" ({html.escape(svc.hours)})" if svc.hours else ""
        lines_html.append(f"<li><b>{html.escape(svc.name)}</b>: {how_html}{hours}{link}</li>")
    return lines_plain, lines_html


REGION_HINT = (
    "Somewhere else? Reply here with !region and your country's two-letter code (for example "
    "!region GB or !region US) and I'll send the lines for where you are."
)


def member_resources_content(
    locale: str | None,
    resources: CrisisResources,
    *,
    severity: str | None = None,
    theme: str | None = None,
) -> dict[str, Any]:
    """The private message offered to the person: warm, non-punitive, safe-messaging compliant
    (no method talk, no judgement), encouraging them to reach out, with services for ``locale``
    (a region code or locale) and the space's ``theme``. For imminent risk the emergency number
    comes first."""
    rs = resources.resources_for(locale)
    imminent = severity == Severity.IMMINENT.value
    intro = (
        "Hi, this is Hearth, the care bot for this community. Something you shared made us want to "
        "check in with you. You haven't done anything wrong, and you're not in any trouble."
    )
    care = (
        "If things feel really heavy right now, you don't have to carry it alone. Talking to someone "
        "can help, and these services are free and confidential:"
    )
    team = (
        "We've also let someone from our care team know, and they may reach out to you here. You're "
        "welcome to reply, or to keep talking in the group whenever you're ready."
    )
    closing = "We're glad you're here."
    emergency = f"If you're not safe right now, please call {rs.emergency}."
    if imminent:
        emergency = (
            f"If you're in danger right now, please call {rs.emergency} now, or ask someone near you to."
        )

    lines_plain, lines_html = _service_items(rs.services_for(theme))
    services_plain = care + "\n" + "\n".join(lines_plain)
    services_html = f"<p>{html.escape(care)}</p><ul>{''.join(lines_html)}</ul>"
    emergency_html = (
        f"<p><b>{html.escape(emergency)}</b></p>" if imminent else f"<p>{html.escape(emergency)}</p>"
    )
    if imminent:
        plain = [emergency, intro, services_plain, team, REGION_HINT, closing]
        formatted = [emergency_html, f"<p>{html.escape(intro)}</p>", services_html]
    else:
        plain = [intro, services_plain, emergency, team, REGION_HINT, closing]
        formatted = [f"<p>{html.escape(intro)}</p>", services_html, emergency_html]
    formatted += [f"<p>{html.escape(t)}</p>" for t in (team, REGION_HINT, closing)]
    return {
        "msgtype": "m.text",
        "body": "\n\n".join(plain),
        "format": "org.matrix.custom.html",
        "formatted_body": "".join(formatted),
        "m.mentions": {},
        "org.hearth.resources": {"region": rs.region, "locale": locale},
    }


def region_lines_content(
    region: str | None, resources: CrisisResources, *, theme: str | None = None
) -> dict[str, Any]:
    """The reply to a member's ``!region``: the lines for the region they chose (or the
    international ones when they cleared it), emergency number first."""
    rs = resources.resources_for(region)
    where = "wherever you are" if rs.region == "default" else rs.name
    head = f"Thank you. From now on I'll show you help for {where}."
    emergency = f"If you're in danger, call {rs.emergency}."
    lines_plain, lines_html = _service_items(rs.services_for(theme))
    tail = "Send !region clear to go back to the lines for your space, or !region XX for another country."
    body = "\n\n".join([head, emergency, "\n".join(lines_plain), tail])
    formatted = (
        f"<p>{html.escape(head)}</p><p><b>{html.escape(emergency)}</b></p><ul>{''.join(lines_html)}</ul>"
        f"<p>{html.escape(tail)}</p>"
    )
    return {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {},
        "org.hearth.resources": {"region": rs.region, "locale": region},
    }


# ---------------------------------------------------------------------------------------------
# Webhook signing (Stripe-style: HMAC-SHA256 over "<timestamp>.<body>")


def webhook_body(notif: Notification) -> bytes:
    """The exact bytes to POST for a webhook notification (canonical JSON of its payload, plus the
    notification's ``txn_id`` as ``id`` so the receiver can deduplicate retries)."""
    return json.dumps({"id": notif.txn_id, **notif.payload}, sort_keys=True, separators=(",", ":")).encode()


def sign_webhook(secret: bytes, body: bytes, timestamp: int) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` for the signature header."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(secret: bytes, body: bytes, header: str, *, now_ts: int, tolerance: int = 300) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made within ``tolerance`` seconds of ``now_ts``."""
    try:
        fields: dict[str, list[str]] = {}
        for part in header.split(","):
            k, _, v = part.strip().partition("=")
            fields.setdefault(k, []).append(v)
        ts = int(fields["t"][0])
    except (KeyError, ValueError, IndexError):
        return False
    if abs(now_ts - ts) > tolerance:
        return False
    expected = sign_webhook(secret, body, ts).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))
