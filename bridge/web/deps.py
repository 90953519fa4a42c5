"""Request dependencies: the running service, the signed-in staff member and bearer-secret checks."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from bridge.web.auth import COOKIE, Principal, StaffAuth, require_role

if TYPE_CHECKING:
    from bridge.service import HearthService


def service(request: Request) -> HearthService:
    return request.app.state.service


def bearer_matches(request: Request, secret: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), secret.encode())


def require_bearer(request: Request, secret: str, what: str) -> None:
    if not bearer_matches(request, secret):
        raise HTTPException(
            status_code=401, detail={"errcode": "M_UNAUTHORIZED", "error": f"missing or wrong {what}"}
        )


def staff_auth(request: Request) -> StaffAuth:
    auth: StaffAuth = request.app.state.service.auth
    return auth


# Declared so that OpenAPI shows how to authenticate; the session itself is read by StaffAuth.
_BEARER = HTTPBearer(auto_error=False, description="The session token from POST /api/auth/openid")
_COOKIE = APIKeyCookie(
    name=COOKIE, auto_error=False, description="The same token, as the staff pages send it"
)


async def signed_in(
    request: Request,
    _bearer: HTTPAuthorizationCredentials | None = Depends(_BEARER),
    _cookie: str | None = Depends(_COOKIE),
) -> Principal:
    """The signed-in staff member (any role); 401 without a session."""
    return await staff_auth(request).principal(request)


async def clinician(who: Principal = Depends(signed_in)) -> Principal:
    """The signed-in clinician; 403 for moderators and admins (clinical case files are clinicians' only)."""
    return require_role(who, "clinician", what="read or act on clinical case files")


async def moderator(who: Principal = Depends(signed_in)) -> Principal:
    """The signed-in moderator or admin; 403 for clinicians (the review queue is not theirs)."""
    return require_role(who, "moderator", "admin", what="review reports and sanction members")
