"""Escalation's vocabulary: severities, statuses, outcomes, notification kinds, errors and the
SLA and retry policies (plain config models; the bridge builds them from settings)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField

from moderation.labels import TIER_RANK

# ---------------------------------------------------------------------------------------------
# Vocabulary


class Severity(StrEnum):
    """Crisis risk tier, as the crisis detector reports it (``none`` never escalates)."""

    MODERATE = "moderate"
    HIGH = "high"
    IMMINENT = "imminent"

    @property
    def rank(self) -> int:
        return TIER_RANK[self.value]


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
        return as_utc(now) + timedelta(seconds=self.seconds_for(severity))


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


def as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt!r}: pass aware datetimes only")
    return dt.astimezone(UTC)


def format_time(dt: datetime, tz: tzinfo = UTC) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
