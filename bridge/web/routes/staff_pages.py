"""The clinicians' dashboard: server-rendered pages (Jinja2) with a little script of Hearth's own,
nothing from a CDN.

- ``GET /staff``: the sign-in page (Matrix account, no new password: the browser signs in to the
  homeserver, asks it for an OpenID token and gives only that to Hearth, then signs the Matrix session
  out again; the password never reaches Hearth and is never stored), or, signed in as a clinician,
  the open escalations ranked by severity and time left on their SLA, kept live by server-sent
  events, with the two plots of how the service is doing.
- ``GET /staff/cases/{id}``: a case with its evidence, audit trail, notes and conversation status,
  and take / acknowledge / resolve / note (through the staff API, with the session cookie).
- ``GET /staff/events``: the live queue as server-sent events.
Moderators and admins are refused the clinical pages.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, col, select

from bridge.db import run_db
from bridge.escalation.render import category_words
from bridge.web.auth import Principal
from bridge.web.charts import ack_svg, per_day_svg
from bridge.web.deps import staff_auth
from bridge.web.sse import live
from moderation.escalation import (
    ACTIVE_STATUSES,
    OUTCOME_LABELS,
    Escalation,
    EscalationNotFound,
    Outcome,
    get_escalation_with_trail,
)
from moderation.escalation.stats import ack_times, per_day, queue

router = APIRouter(tags=["staff pages"])
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")


def _csp(homeserver: str) -> dict[str, str]:
    # Only Hearth's own script and style; the sign-in page talks to the homeserver and nothing else.
    return {
        "Content-Security-Policy": f"default-src 'self'; connect-src 'self' {homeserver}; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    svc = request.app.state.service
    homeserver = svc.settings.matrix.homeserver_url.rstrip("/")
    context |= {"homeserver": homeserver, "server_name": svc.settings.matrix.server_name}
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status, headers=_csp(homeserver))


async def signed_in_as(request: Request, roles: tuple[str, ...], refused: str) -> Principal | HTMLResponse:
    """The signed-in staff member if their role is one of ``roles``; else the sign-in page (no
    session) or the ``refused`` page (403) to return instead."""
    try:
        who = await staff_auth(request).principal(request)
    except HTTPException as e:
        return _page(request, "sign_in.html", status=e.status_code)
    if who.role not in roles:
        return _page(request, refused, status=403, who=who)
    return who


async def _clinician_or_page(request: Request) -> Principal | HTMLResponse:
    return await signed_in_as(request, ("clinician",), "refused.html")


def _row(esc: Escalation, names: dict[str, str]) -> dict[str, Any]:
    # Nothing here changes by itself with time (the page counts the SLA down from the deadline), so an
    # unchanged queue is never sent again.
    return {
        "id": esc.id,
        "severity": esc.severity,
        "category": category_words(esc.category),
        "status": esc.status,
        "member": esc.sender,
        "space": esc.space or "",
        "raised": esc.created_at.strftime("%H:%M"),
        "sla_deadline": esc.sla_deadline.isoformat(),
        "taken_by": names.get(esc.taken_by or "", esc.taken_by or ""),
        "acknowledged_by": names.get(esc.acknowledged_by or "", esc.acknowledged_by or ""),
        "left_alone": esc.left_alone_at is not None,
        "replies": esc.care_replies,
    }


async def _queue(request: Request) -> list[dict[str, Any]]:
    svc = request.app.state.service
    active = [s.value for s in ACTIVE_STATUSES]

    def read(s: Session) -> list[Escalation]:
        return list(s.exec(select(Escalation).where(col(Escalation.status).in_(active))).all())

    rows = queue(await run_db(svc.engine, read))
    names = svc.desk.staff.display_names
    return [_row(e, names) for e in rows]


@router.get("/staff", response_class=HTMLResponse, response_model=None)
async def dashboard(request: Request) -> HTMLResponse | RedirectResponse:
    """The sign-in page, or for a signed-in clinician the open escalations (live) and the plots; a
    moderator or admin is sent on to the moderators' pages (``/mod``)."""
    try:
        if (await staff_auth(request).principal(request)).role in ("moderator", "admin"):
            return RedirectResponse("/mod", status_code=303)
    except HTTPException:
        pass  # not signed in: the sign-in page below
    who = await _clinician_or_page(request)
    if isinstance(who, HTMLResponse):
        return who if who.status_code != 401 else _page(request, "sign_in.html")
    svc = request.app.state.service
    now = svc.clock.now()
    since = now - timedelta(weeks=8)

    def recent(s: Session) -> list[Escalation]:
        return list(s.exec(select(Escalation).where(col(Escalation.created_at) >= since)).all())

    rows = await run_db(svc.engine, recent)
    return _page(
        request,
        "dashboard.html",
        who=who,
        queue=await _queue(request),
        per_day=per_day_svg(per_day(rows, now=now)),
        acks=ack_svg(ack_times(rows, now=now)),
    )


@router.get("/staff/cases/{esc_id}", response_class=HTMLResponse)
async def case_page(esc_id: str, request: Request) -> HTMLResponse:
    """One case: evidence, audit trail, notes, the conversation's state; take, acknowledge, resolve, note."""
    who = await _clinician_or_page(request)
    if isinstance(who, HTMLResponse):
        return who
    svc = request.app.state.service
    try:
        trail = await run_db(svc.engine, lambda s: get_escalation_with_trail(s, esc_id))
    except EscalationNotFound:
        return _page(request, "not_found.html", status=404, who=who, esc_id=esc_id)
    names = svc.desk.staff.display_names
    return _page(
        request,
        "case.html",
        who=who,
        esc=trail.escalation,
        trail=trail,
        names=names,
        category=category_words(trail.escalation.category),
        outcomes=[(o.value, OUTCOME_LABELS.get(o, o.value)) for o in Outcome],
    )


@router.get("/staff/events")
async def events(request: Request) -> StreamingResponse:
    """The open escalations as server-sent events (``event: queue``), sent again whenever they change."""
    who = await staff_auth(request).principal(request)
    if who.role != "clinician":
        raise HTTPException(403, {"errcode": "M_FORBIDDEN", "error": "The live queue is for clinicians."})

    return live(request, lambda: _queue(request))
