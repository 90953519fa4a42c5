"""The moderators' pages: the same sign-in and roles as the clinicians' dashboard, for moderators and
admins (clinicians are refused: this is not their queue, and moderators never see clinical pages).

- ``GET /mod``: the review queue, most urgent first then oldest, kept live by server-sent events
  (``GET /mod/events``), with plots of blocked and flagged messages per label per week and of the
  time to review;
- ``GET /mod/cases/{id}``: a case with its kept excerpt, the evidence spans highlighted, the signals
  that caused it, who reported it, and every action (dismiss, redact, warn, mute, ban) through the
  moderators' API;
- ``GET /mod/members/{user}``: the member's file, and a note;
- ``GET /mod/audit``: moderator actions, with CSV and JSON export.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from bridge.moderators.render import label_words
from bridge.web.auth import Principal
from bridge.web.charts import review_svg, weekly_labels_svg
from bridge.web.deps import staff_auth
from bridge.web.routes.staff_pages import _page, signed_in_as
from bridge.web.sse import live
from moderation import casework as cw
from moderation.casework import ModCase

router = APIRouter(tags=["moderators' pages"])
MODERATION_ROLES = ("moderator", "admin")


async def _moderator_or_page(request: Request) -> Principal | HTMLResponse:
    return await signed_in_as(request, MODERATION_ROLES, "mod_refused.html")


def _row(c: ModCase, names: dict[str, str]) -> dict[str, Any]:
    reasons = [c.reason, *(label_words(s) for s in c.signals)]
    return {
        "id": c.id,
        "kind": c.kind,
        "priority": c.priority,
        "why": "; ".join(dict.fromkeys(r for r in reasons if r)),
        "member": names.get(c.subject, c.subject),
        "space": c.space or "",
        "reports": c.reports,
        "raised": c.created_at.isoformat(),
    }


async def _queue(request: Request) -> list[dict[str, Any]]:
    svc = request.app.state.service
    cases = await svc.moderators.cases("open", 200)
    names = svc.moderators.staff.display_names
    return [_row(c, names) for c in cases]


def highlighted(text: str | None, spans: list[list[int]]) -> list[tuple[str, bool]]:
    """The excerpt cut into (text, is evidence) pieces for ``<mark>`` (pure; overlapping spans merge)."""
    if not text:
        return []
    marks = sorted((max(0, a), min(len(text), b)) for a, b in spans if b > a)
    merged: list[tuple[int, int]] = []
    for a, b in marks:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    out: list[tuple[str, bool]] = []
    pos = 0
    for a, b in merged:
        if a > pos:
            out.append((text[pos:a], False))
        out.append((text[a:b], True))
        pos = b
    if pos < len(text):
        out.append((text[pos:], False))
    return out


@router.get("/mod", response_class=HTMLResponse)
async def queue_page(request: Request) -> HTMLResponse:
    """The review queue (live) and the plots."""
    who = await _moderator_or_page(request)
    if isinstance(who, HTMLResponse):
        return who
    svc = request.app.state.service
    weeks, reviews = await svc.moderators.figures(weeks=8)
    return _page(
        request,
        "mod_queue.html",
        who=who,
        queue=await _queue(request),
        per_label=weekly_labels_svg(weeks),
        review=review_svg(reviews),
    )


@router.get("/mod/cases/{case_id}", response_class=HTMLResponse)
async def case_page(case_id: str, request: Request) -> HTMLResponse:
    who = await _moderator_or_page(request)
    if isinstance(who, HTMLResponse):
        return who
    svc = request.app.state.service
    try:
        view = await svc.moderators.view(case_id)
    except cw.CaseNotFound:
        return _page(request, "not_found.html", status=404, who=who, esc_id=case_id)
    spans = [span for sig in view.evidence for span in sig.get("spans", [])]
    return _page(
        request,
        "mod_case.html",
        who=who,
        view=view,
        case=view.case,
        pieces=highlighted(view.excerpt, spans),
        names=svc.moderators.staff.display_names,
        label_words=label_words,
    )


@router.get("/mod/members/{user_id}", response_class=HTMLResponse)
async def member_page(user_id: str, request: Request) -> HTMLResponse:
    who = await _moderator_or_page(request)
    if isinstance(who, HTMLResponse):
        return who
    svc = request.app.state.service
    f = await svc.moderators.member_file(user_id)
    return _page(request, "mod_member.html", who=who, f=f, names=svc.moderators.staff.display_names)


@router.get("/mod/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> HTMLResponse:
    who = await _moderator_or_page(request)
    if isinstance(who, HTMLResponse):
        return who
    svc = request.app.state.service
    rows = await svc.moderators.audit_log(since=timedelta(days=90))
    return _page(request, "mod_audit.html", who=who, rows=rows, names=svc.moderators.staff.display_names)


@router.get("/mod/events")
async def events(request: Request) -> StreamingResponse:
    """The open cases as server-sent events (``event: queue``), sent again whenever they change."""
    who = await staff_auth(request).principal(request)
    if who.role not in MODERATION_ROLES:
        raise HTTPException(403, {"errcode": "M_FORBIDDEN", "error": "The review queue is for moderators."})

    return live(request, lambda: _queue(request))
