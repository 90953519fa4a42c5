"""Moderators' API: the review queue, a case with its evidence, the member's file, sanctions, notes,
appeals and the audit log of moderator actions (JSON or CSV).

Every call is by a signed-in moderator or admin (``bridge.web.auth``); clinicians are refused (they
have their own pages), and the acting person is always the one signed in. Everything goes through
the moderation desk, as the commands in ``#hearth-moderators`` do, so the same rules apply: staff are
never sanctioned, an appeal is decided by someone other than the moderator who acted, and every
action lands in the audit log. Errors are 4xx ``{"errcode", "error"}``.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from bridge.moderators.desk import CaseView, ModerationDesk
from bridge.moderators.sanctions import DEFAULT
from bridge.web.auth import Principal
from bridge.web.deps import moderator
from bridge.web.routes.escalations import ErrorOut
from moderation import casework as cw
from moderation.casework import ModCase, SanctionKind

router = APIRouter(prefix="/api/mod", tags=["moderation"])

KindName = Literal["warn", "mute", "ban"]


ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "not a moderator, or an action the rules forbid"},
    404: {"model": ErrorOut, "description": "no such case, sanction or appeal"},
    409: {"model": ErrorOut, "description": "decided already"},
}


def _desk(request: Request) -> ModerationDesk:
    desk: ModerationDesk = request.app.state.service.moderators
    return desk


def _translate(e: Exception) -> HTTPException:
    if isinstance(e, cw.CaseNotFound):
        return HTTPException(404, {"errcode": "M_NOT_FOUND", "error": str(e)})
    if isinstance(e, cw.NotPermitted):
        return HTTPException(403, {"errcode": "M_FORBIDDEN", "error": str(e)})
    if isinstance(e, cw.CaseworkError):
        return HTTPException(409, {"errcode": "HEARTH_CONFLICT", "error": str(e)})
    return HTTPException(422, {"errcode": "M_INVALID_PARAM", "error": str(e)})


# --- bodies -----------------------------------------------------------------------------------


# A Matrix user ID: "@", a localpart of printable ASCII without ":" (the spec's historical set), ":",
# a server name. No control characters: PostgreSQL refuses a NUL in text (a 500 schemathesis found).
MATRIX_USER_ID = r"^@[\x21-\x39\x3B-\x7E]+:[\x21-\x7E]+$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteBody(Strict):
    text: str = Field(min_length=1, max_length=2000, description="#words become labels")


class DismissBody(Strict):
    note: str = Field("", max_length=512)


class SanctionBody(Strict):
    user_id: str = Field(pattern=MATRIX_USER_ID, max_length=255)
    kind: KindName
    reason: str = Field("", max_length=512)
    duration: str | None = Field(None, description="10m, 2h, 7d, 2w or permanent (bans); empty: the default")
    scope: str | None = Field(
        None, description="a space's name, or * for every space; empty: the case's space"
    )
    case_id: str | None = None


class LiftBody(Strict):
    user_id: str = Field(pattern=MATRIX_USER_ID, max_length=255)
    kind: Literal["mute", "ban"]


class RedactBody(Strict):
    reason: str = Field("", max_length=512)


class AppealBody(Strict):
    lift: bool
    note: str = Field("", max_length=1000)


# --- response models --------------------------------------------------------------------------


class CaseOut(BaseModel):
    id: str
    kind: Literal["flag", "report", "held"]
    status: Literal["open", "dismissed", "actioned"]
    room_id: str
    event_id: str
    subject: str
    space: str | None
    reason: str
    signals: list[str]
    priority: int
    reports: int
    created_at: str
    decided_by: str | None
    decided_at: str | None
    decision: str | None


class CaseList(BaseModel):
    cases: list[CaseOut]


class SignalOut(BaseModel):
    detector: str
    label: str
    score: float
    rule: str | None = None
    spans: list[list[int]] = Field(default_factory=list)


class CaseDetail(CaseOut):
    excerpt: str | None = Field(description="the text kept for review (None once purged)")
    evidence: list[SignalOut] = Field(description="the signals that caused it, with offsets into the excerpt")
    reporters: list[str]
    reports_against_member: int


class SanctionOut(BaseModel):
    id: str
    user_id: str
    kind: KindName
    scope: str
    reason: str
    by: str
    case_id: str | None
    created_at: str
    expires_at: str | None
    ended_at: str | None
    end_reason: str | None


class ModNoteOut(BaseModel):
    user_id: str
    by: str
    text: str
    labels: list[str]
    created_at: str


class AppealOut(BaseModel):
    id: str
    sanction_id: str
    user_id: str
    text: str
    status: Literal["open", "upheld", "lifted"]
    created_at: str
    decided_by: str | None
    note: str | None


class MemberFileOut(BaseModel):
    user_id: str
    decisions: dict[str, int]
    reports_against: int
    cases: list[CaseOut]
    sanctions: list[SanctionOut]
    appeals: list[AppealOut]
    notes: list[ModNoteOut]


class Lifted(BaseModel):
    lifted: list[SanctionOut]


class ModAuditOut(BaseModel):
    at: str
    actor: str
    action: str
    subject: str | None
    case_id: str | None
    sanction_id: str | None
    appeal_id: str | None
    detail: str


class ModAuditList(BaseModel):
    audit: list[ModAuditOut]


def _out(row: Any, keep: type[BaseModel]) -> dict[str, Any]:
    data = cw.as_dict(row)
    return {k: data.get(k) for k in keep.model_fields}


def _case(c: ModCase) -> dict[str, Any]:
    return _out(c, CaseOut)


def _detail(v: CaseView) -> dict[str, Any]:
    return _case(v.case) | {
        "excerpt": v.excerpt,
        "evidence": v.evidence,
        "reporters": v.reporters,
        "reports_against_member": v.reports_against,
    }


# --- routes -----------------------------------------------------------------------------------


@router.get("/cases", response_model=CaseList, responses={403: ERRORS[403]})
async def list_cases(
    status: Literal["open", "dismissed", "actioned"] = "open",
    limit: int = Query(100, ge=1, le=500),
    who: Principal = Depends(moderator),
    desk: ModerationDesk = Depends(_desk),
) -> dict[str, Any]:
    """The review queue (open: highest priority first, then oldest), or decided cases, newest first."""
    return {"cases": [_case(c) for c in await desk.cases(status, limit)]}


@router.get("/cases/{case_id}", response_model=CaseDetail, responses={k: ERRORS[k] for k in (403, 404)})
async def get_case(
    case_id: str, who: Principal = Depends(moderator), desk: ModerationDesk = Depends(_desk)
) -> dict[str, Any]:
    """One case: the kept excerpt, the signals with their evidence spans, who reported it."""
    try:
        return _detail(await desk.view(case_id))
    except cw.CaseworkError as e:
        raise _translate(e) from None


@router.post("/cases/{case_id}/dismiss", response_model=CaseOut, responses=ERRORS)
async def dismiss(
    case_id: str,
    body: DismissBody | None = None,
    who: Principal = Depends(moderator),
    desk: ModerationDesk = Depends(_desk),
) -> dict[str, Any]:
    """Close a case with nothing to do."""
    try:
        return _case(await desk.dismiss(who.user_id, case_id, (body or DismissBody()).note))
    except cw.CaseworkError as e:
        raise _translate(e) from None


@router.post("/cases/{case_id}/redact", response_model=CaseOut, responses=ERRORS)
async def redact(
    case_id: str,
    body: RedactBody | None = None,
    who: Principal = Depends(moderator),
    desk: ModerationDesk = Depends(_desk),
) -> dict[str, Any]:
    """Redact the case's message in its room (the case is marked actioned)."""
    try:
        return _case(await desk.redact_case(who.user_id, case_id, (body or RedactBody()).reason))
    except cw.CaseworkError as e:
        raise _translate(e) from None


@router.post("/sanctions", response_model=SanctionOut, responses=ERRORS)
async def sanction(
    body: SanctionBody, who: Principal = Depends(moderator), desk: ModerationDesk = Depends(_desk)
) -> dict[str, Any]:
    """Warn, mute or ban a member across a space (or every space); the member is told privately."""
    try:
        duration: object = DEFAULT if not body.duration else cw.parse_duration(body.duration)
    except ValueError as e:
        raise _translate(e) from None
    try:
        imposed = await desk.sanction(
            who.user_id,
            body.user_id,
            SanctionKind(body.kind),
            reason=body.reason,
            duration=duration,
            scope=body.scope,
            case_id=body.case_id,
        )
    except cw.CaseworkError as e:
        raise _translate(e) from None
    return _out(imposed.sanction, SanctionOut)


@router.post("/sanctions/lift", response_model=Lifted, responses=ERRORS)
async def lift(
    body: LiftBody, who: Principal = Depends(moderator), desk: ModerationDesk = Depends(_desk)
) -> dict[str, Any]:
    """Lift a member's mutes or bans in force (a ban is undone in the rooms it was applied in)."""
    try:
        rows = await desk.lift(who.user_id, body.user_id, SanctionKind(body.kind))
    except cw.CaseworkError as e:
        raise _translate(e) from None
    return {"lifted": [_out(r, SanctionOut) for r in rows]}


@router.get("/members/{user_id}", response_model=MemberFileOut, responses={403: ERRORS[403]})
async def member_file(
    user_id: str = Path(pattern=MATRIX_USER_ID, max_length=255),
    who: Principal = Depends(moderator),
    desk: ModerationDesk = Depends(_desk),
) -> dict[str, Any]:
    """A member's file across spaces: screening decisions, cases, reports, sanctions, appeals, notes."""
    f = await desk.member_file(user_id)
    return {
        "user_id": f.user_id,
        "decisions": f.decisions,
        "reports_against": f.reports_against,
        "cases": [_case(c) for c in f.cases],
        "sanctions": [_out(s, SanctionOut) for s in f.sanctions],
        "appeals": [_out(a, AppealOut) for a in f.appeals],
        "notes": [_out(n, ModNoteOut) for n in f.notes],
    }


@router.post("/members/{user_id}/notes", response_model=ModNoteOut, responses=ERRORS)
async def add_note(
    body: NoteBody,
    user_id: str = Path(pattern=MATRIX_USER_ID, max_length=255),
    who: Principal = Depends(moderator),
    desk: ModerationDesk = Depends(_desk),
) -> dict[str, Any]:
    """A moderator's note on a member (``#labels`` in the text)."""
    try:
        return _out(await desk.note(who.user_id, user_id, body.text), ModNoteOut)
    except cw.CaseworkError as e:
        raise _translate(e) from None


@router.post("/appeals/{appeal_id}", response_model=AppealOut, responses=ERRORS)
async def decide_appeal(
    appeal_id: str,
    body: AppealBody,
    who: Principal = Depends(moderator),
    desk: ModerationDesk = Depends(_desk),
) -> dict[str, Any]:
    """Uphold or lift (not by the moderator who imposed the sanction)."""
    try:
        appeal = await desk.decide_appeal_row(who.user_id, appeal_id, lift=body.lift, note=body.note)
    except cw.CaseworkError as e:
        raise _translate(e) from None
    return _out(appeal, AppealOut)


AUDIT_FIELDS = list(ModAuditOut.model_fields)


def _cell(value: Any) -> Any:
    """A spreadsheet must not run what a moderator typed: cells that start like a formula are quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.get(
    "/audit",
    response_model=ModAuditList,
    responses={
        403: ERRORS[403],
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"},
    },
)
async def audit(
    format: Literal["json", "csv"] = "json",
    days: int = Query(90, ge=1, le=3650),
    who: Principal = Depends(moderator),
    desk: ModerationDesk = Depends(_desk),
) -> Any:
    """Moderator actions, newest first: JSON, or CSV for a spreadsheet (``format=csv``). No message text."""
    rows = [_out(a, ModAuditOut) for a in await desk.audit_log(since=timedelta(days=days))]
    if format == "json":
        return {"audit": rows}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=AUDIT_FIELDS)
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="hearth-moderation-audit.csv"'},
    )
