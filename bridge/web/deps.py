"""Request dependencies: the running service and bearer-token checks."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

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
