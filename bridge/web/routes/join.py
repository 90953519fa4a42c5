"""The way in for members (public, no session): ``GET /join`` explains what Hearth is (peer support,
not therapy or a crisis service), lists the spaces and hands out a single-use registration token
with the steps to sign up in Element; ``POST /api/join`` is the token itself, rate-limited per
client address. With ``join.require_approval`` it answers 202 with a request held for an operator
instead, which the page polls (``GET /api/join/requests/{id}``) until the code is there or refused.
Nothing about the person is asked for or kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from bridge.gateway import GatewayError
from bridge.join import TooMany
from bridge.web.routes.directory import spaces as directory
from bridge.web.routes.escalations import ErrorOut
from bridge.web.routes.staff_pages import _page

router = APIRouter(tags=["join"])


class JoinToken(BaseModel):
    token: str
    homeserver: str
    server_name: str
    expires_at: str | None


class JoinPending(BaseModel):
    """A request held for an operator: poll ``poll`` until its status is approved or refused."""

    request_id: str
    reference: str
    status: str
    poll: str


class JoinRequestStatus(BaseModel):
    """Where a held request stands; the token and where to use it once approved."""

    reference: str
    status: str  # pending | approved | refused
    token: str | None = None
    homeserver: str | None = None
    server_name: str | None = None
    expires_at: str | None = None


def _homeserver(request: Request) -> str:
    settings = request.app.state.service.settings
    return (settings.join.public_homeserver_url or settings.matrix.homeserver_url).rstrip("/")


@router.get("/join", response_class=HTMLResponse)
async def join_page(request: Request) -> HTMLResponse:
    """What Hearth is, its spaces, and how to get an account (a token, then Element)."""
    svc = request.app.state.service
    listing = await directory(svc)
    return _page(
        request,
        "join.html",
        spaces=listing["spaces"],
        enabled=svc.settings.join.enabled,
        approval=svc.settings.join.require_approval,
        public_homeserver=_homeserver(request),
    )


@router.post(
    "/api/join",
    response_model=JoinToken,
    responses={
        202: {"model": JoinPending, "description": "join.require_approval: held for an operator"},
        403: {"model": ErrorOut, "description": "tokens are not handed out here"},
        429: {"model": ErrorOut, "description": "too many tokens from this address"},
        503: {"model": ErrorOut, "description": "the homeserver did not answer"},
    },
)
async def join_token(request: Request) -> Any:
    """A single-use registration token (expires after ``join.token_expiry_hours``), or, with
    ``join.require_approval``, a request held for an operator (202)."""
    svc = request.app.state.service
    if not svc.settings.join.enabled:
        raise HTTPException(
            403, {"errcode": "M_FORBIDDEN", "error": "Ask an operator of this community for a way in."}
        )
    address = request.client.host if request.client else "unknown"
    try:
        if svc.settings.join.require_approval:
            held = await svc.join.request_for(address)
            body = JoinPending(
                request_id=held.id,
                reference=held.reference,
                status=held.status,
                poll=f"/api/join/requests/{held.id}",
            )
            return JSONResponse(body.model_dump(), status_code=202)
        token = await svc.join.token_for(address)
    except TooMany as e:
        raise HTTPException(
            429,
            {
                "errcode": "M_LIMIT_EXCEEDED",
                "error": f"Too many sign-up tokens from here: try again in {e.retry_after} s.",
            },
            headers={"Retry-After": str(e.retry_after)},
        ) from None
    except (GatewayError, OSError) as e:
        raise HTTPException(
            503, {"errcode": "M_UNAVAILABLE", "error": f"The homeserver did not give a token just now: {e}"}
        ) from None
    return {
        "token": token.token,
        "homeserver": _homeserver(request),
        "server_name": svc.settings.matrix.server_name,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }


@router.get(
    "/api/join/requests/{request_id}",
    response_model=JoinRequestStatus,
    responses={404: {"model": ErrorOut, "description": "no such request (or it was forgotten)"}},
)
async def join_request(request: Request, request_id: str) -> dict[str, Any]:
    """Where a held request for a sign-up code stands (``join.require_approval``)."""
    svc = request.app.state.service
    row = await svc.join.poll(request_id)
    if row is None:
        raise HTTPException(
            404, {"errcode": "M_NOT_FOUND", "error": "No such request: it may have expired. Ask again."}
        )
    out: dict[str, Any] = {"reference": row.reference, "status": row.status}
    if row.status == "approved" and row.token:
        out |= {
            "token": row.token,
            "homeserver": _homeserver(request),
            "server_name": svc.settings.matrix.server_name,
            "expires_at": row.token_expires_at.isoformat() if row.token_expires_at else None,
        }
    return out
