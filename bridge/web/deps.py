"""Request dependencies: the running service, the signed-in staff member and bearer-secret checks."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from bridge.web.auth import Principal, StaffAuth, require_role

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


async def signed_in(request: Request) -> Principal:
    """The signed-in staff member (any role); 401 without a session."""
    return await staff_auth(request).principal(request)


async def clinician(request: Request) -> Principal:
    """The signed-in clinician; 403 for moderators and admins (clinical case files are clinicians' only)."""
    return require_role(await signed_in(request), "clinician", what="read or act on clinical case files")
