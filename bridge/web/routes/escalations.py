"""Staff API for crisis escalations: list, read with audit trail and evidence, acknowledge, resolve, note.

Every call is by a signed-in clinician (``bridge.web.auth``: a Matrix OpenID sign-in, the session
token as a bearer token or cookie); moderators and admins are refused, as case files are clinical. The
acting person is always the one signed in, and every action lands in the case's audit trail under
their name. Errors are 4xx with a Matrix-style body ``{"errcode", "error"}`` whose ``error`` is a
sentence fit to show a clinician.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bridge.escalation.desk import EscalationDesk, NotPermitted
from bridge.web.auth import Principal
from bridge.web.deps import clinician
from moderation.escalation import (
    Escalation,
    EscalationAudit,
    EscalationNotFound,
    EscalationTrail,
    IllegalTransition,
    NotStaff,
    escalation_summary,
)

router = APIRouter(prefix="/api/escalations", tags=["escalations"])

StatusName = Literal["open", "repaged", "acknowledged", "resolved"]
SeverityName = Literal["imminent", "high", "moderate"]


class ActorBody(BaseModel):
    """Who acts is the signed-in clinician, never a field: an ``actor`` in the body is refused (400)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=4000)


class ResolveBody(ActorBody):
    outcome: str = Field(
        description="contacted, referred_emergency, false_alarm, no_response, "
        "handed_to_other_service or other"
    )


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


# --- response models (the OpenAPI document's schemas; times are ISO 8601 strings) -------------


class Conversation(BaseModel):
    """Where the care room stands, never its text."""

    state: Literal["not_started", "waiting_for_a_clinician", "with_clinician", "left_alone"]
    care_room_id: str | None
    taken_by: str | None
    taken_at: str | None
    left_alone_at: str | None
    member_replies: int
    last_member_reply_at: str | None


class EscalationOut(BaseModel):
    id: str
    severity: SeverityName
    category: str
    status: StatusName
    room_id: str
    event_id: str = Field(description="the first crisis message of the episode")
    sender: str
    space: str | None
    outcome: str | None
    created_at: str
    sla_deadline: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    resolved_by: str | None
    resolved_at: str | None
    repage_count: int
    message_count: int
    excerpt: str = Field(description="kept for the clinician, purged after excerpt_retention_days")
    latest_event_id: str | None
    alert_event_id: str | None
    locale: str | None
    updated_at: str
    conversation: Conversation


class EscalationList(BaseModel):
    escalations: list[EscalationOut]
    limit: int
    offset: int


class AuditOut(BaseModel):
    transition: str
    from_status: str | None
    to_status: str
    actor: str
    note: str | None
    at: str


class NoteOut(AuditOut):
    escalation_id: str


class EvidenceOut(BaseModel):
    event_id: str
    severity: str
    category: str
    signals: list[dict[str, Any]]
    at: str


class NotificationOut(BaseModel):
    kind: str
    status: str
    attempts: int
    created_at: str
    sent_at: str | None
    event_id: str | None
    last_error: str | None


class TrailOut(EscalationOut):
    evidence: list[EvidenceOut]
    audit: list[AuditOut]
    notifications: list[NotificationOut]


class ErrorOut(BaseModel):
    """A refusal, Matrix-style: ``errcode`` and a reason in words (409 adds the statuses)."""

    errcode: str
    error: str
    from_status: str | None = None
    to_status: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "not a clinician"},
    404: {"model": ErrorOut, "description": "no such escalation"},
    409: {"model": ErrorOut, "description": "not allowed from the escalation's status"},
}


def _desk(request: Request) -> EscalationDesk:
    desk: EscalationDesk = request.app.state.service.desk
    return desk


def _error(status: int, errcode: str, error: str, **extra: Any) -> HTTPException:
    return HTTPException(status, {"errcode": errcode, "error": error, **extra})


def _translate(e: Exception) -> HTTPException:
    if isinstance(e, EscalationNotFound):
        return _error(404, "M_NOT_FOUND", str(e))
    if isinstance(e, NotPermitted | NotStaff):
        return _error(403, "M_FORBIDDEN", str(e))
    if isinstance(e, IllegalTransition):
        return _error(
            409, "HEARTH_ILLEGAL_TRANSITION", e.reason, from_status=e.from_status, to_status=e.to_status
        )
    return _error(422, "M_INVALID_PARAM", str(e))


def _escalation(esc: Escalation) -> dict[str, Any]:
    return escalation_summary(esc, detailed=True) | {
        "excerpt": esc.excerpt,
        "latest_event_id": esc.latest_event_id,
        "alert_event_id": esc.alert_event_id,
        "locale": esc.locale,
        "updated_at": esc.updated_at.isoformat(),
        "conversation": _conversation(esc),
    }


def _iso(dt: Any) -> str | None:
    return dt.isoformat() if dt else None


def _conversation(esc: Escalation) -> dict[str, Any]:
    """Where the care room stands, never its text: who is with the person, how often they wrote."""
    if esc.taken_by:
        state = "with_clinician"
    elif esc.left_alone_at:
        state = "left_alone"
    elif esc.care_replies:
        state = "waiting_for_a_clinician"
    else:
        state = "not_started"
    return {
        "state": state,
        "care_room_id": esc.care_room_id,
        "taken_by": esc.taken_by,
        "taken_at": _iso(esc.taken_at),
        "left_alone_at": _iso(esc.left_alone_at),
        "member_replies": esc.care_replies,
        "last_member_reply_at": _iso(esc.care_last_reply_at),
    }


def _audit(a: EscalationAudit) -> dict[str, Any]:
    return {
        "transition": a.transition,
        "from_status": a.from_status,
        "to_status": a.to_status,
        "actor": a.actor,
        "note": a.note,
        "at": a.at.isoformat(),
    }


def _trail(t: EscalationTrail) -> dict[str, Any]:
    return _escalation(t.escalation) | {
        "evidence": [
            {
                "event_id": e.event_id,
                "severity": e.severity,
                "category": e.category,
                "signals": e.signals,
                "at": e.created_at.isoformat(),
            }
            for e in t.evidence
        ],
        "audit": [_audit(a) for a in t.audit],
        "notifications": [
            {
                "kind": n.kind,
                "status": n.status,
                "attempts": n.attempts,
                "created_at": n.created_at.isoformat(),
                "sent_at": n.sent_at.isoformat() if n.sent_at else None,
                "event_id": n.result_event_id,
                "last_error": n.last_error,
            }
            for n in t.notifications
        ],
    }


MAX_OFFSET = 1_000_000_000


@router.get("", response_model=EscalationList, responses={403: ERRORS[403]})
async def list_escalations(
    status: list[StatusName] | None = Query(None),
    severity: SeverityName | None = None,
    room_id: str | None = None,
    limit: int = Query(50, ge=1, le=200),
    # bounded: past it there is nothing to page through, and a database integer has a limit (an
    # offset of 2**64 was a 500 from SQLite until schemathesis sent one)
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    who: Principal = Depends(clinician),
    desk: EscalationDesk = Depends(_desk),
) -> dict[str, Any]:
    """List escalations, newest first, filtered by status (repeatable), severity and room."""
    rows = await desk.list_escalations(
        status=status, severity=severity, room_id=room_id, limit=limit, offset=offset
    )
    return {"escalations": [_escalation(e) for e in rows], "limit": limit, "offset": offset}


@router.get("/{esc_id}", response_model=TrailOut, responses={k: ERRORS[k] for k in (403, 404)})
async def get_escalation(
    esc_id: str, who: Principal = Depends(clinician), desk: EscalationDesk = Depends(_desk)
) -> dict[str, Any]:
    """One escalation with its evidence, audit trail and notifications."""
    try:
        return _trail(await desk.trail(esc_id))
    except EscalationNotFound as e:
        raise _translate(e) from None


@router.post("/{esc_id}/acknowledge", response_model=EscalationOut, responses=ERRORS)
async def acknowledge(
    esc_id: str,
    body: ActorBody | None = None,
    who: Principal = Depends(clinician),
    desk: EscalationDesk = Depends(_desk),
) -> dict[str, Any]:
    """Acknowledge an open or re-paged escalation (clinicians only); stops re-paging."""
    body = body or ActorBody()
    actor = who.user_id
    try:
        return _escalation(await desk.acknowledge(esc_id, actor, body.note))
    except (NotStaff, EscalationNotFound, IllegalTransition) as e:
        raise _translate(e) from None


class TakeBody(ActorBody):
    anyway: bool = Field(
        False, description="Join although the person asked to be left alone (only for a risk to life)"
    )


@router.post("/{esc_id}/take", response_model=EscalationOut, responses=ERRORS)
async def take(
    esc_id: str,
    body: TakeBody | None = None,
    who: Principal = Depends(clinician),
    desk: EscalationDesk = Depends(_desk),
) -> dict[str, Any]:
    """Take the case (clinicians only): you are invited into the person's care room, the person is told
    gently who joined, and an unacknowledged case is acknowledged by you."""
    body = body or TakeBody()
    actor = who.user_id
    try:
        return _escalation(await desk.take(esc_id, actor, anyway=body.anyway))
    except (NotStaff, EscalationNotFound, IllegalTransition) as e:
        raise _translate(e) from None


@router.post("/{esc_id}/resolve", response_model=EscalationOut, responses=ERRORS)
async def resolve(
    esc_id: str,
    body: ResolveBody,
    who: Principal = Depends(clinician),
    desk: EscalationDesk = Depends(_desk),
) -> dict[str, Any]:
    """Resolve an escalation with an outcome (clinicians only); an unacknowledged one is acknowledged first."""
    actor = who.user_id
    try:
        return _escalation(await desk.resolve(esc_id, actor, body.outcome, body.note))
    except (NotStaff, EscalationNotFound, IllegalTransition, ValueError) as e:
        raise _translate(e) from None


@router.post(
    "/{esc_id}/notes", status_code=201, response_model=NoteOut, responses={k: ERRORS[k] for k in (403, 404)}
)
async def add_note(
    esc_id: str,
    body: NoteBody,
    who: Principal = Depends(clinician),
    desk: EscalationDesk = Depends(_desk),
) -> dict[str, Any]:
    """Add a staff note to an escalation's audit trail (any staff member, any status)."""
    actor = who.user_id
    try:
        row = await desk.add_note(esc_id, actor, body.text)
        return _audit(row) | {"escalation_id": row.escalation_id}
    except (NotStaff, EscalationNotFound, ValueError) as e:
        raise _translate(e) from None
