"""Staff sign-in with Matrix OpenID (see ``bridge.web.auth``): sign in, who am I, sign out."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from bridge.web.auth import COOKIE, Principal, Role
from bridge.web.deps import signed_in, staff_auth
from bridge.web.routes.escalations import ErrorOut

router = APIRouter(prefix="/api/auth", tags=["auth"])


class OpenIdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    access_token: str = Field(
        min_length=1, max_length=1000, description="An OpenID token from the homeserver"
    )
    matrix_server_name: str = Field(min_length=1, max_length=255, description="The homeserver that issued it")


class SignedIn(BaseModel):
    token: str = Field(description="Hearth session token: send it as `Authorization: Bearer <token>`")
    user_id: str
    role: Role
    display_name: str
    expires_at: datetime


class Me(BaseModel):
    user_id: str
    role: Role
    display_name: str


class SignedOut(BaseModel):
    signed_out: bool


@router.post(
    "/openid",
    response_model=SignedIn,
    responses={
        401: {"model": ErrorOut, "description": "the homeserver did not recognise the OpenID token"},
        403: {"model": ErrorOut, "description": "not an account of this homeserver, or not staff"},
        429: {"model": ErrorOut, "description": "too many failed sign-ins from this address"},
        503: {"model": ErrorOut, "description": "the homeserver did not answer"},
    },
)
async def sign_in_with_openid(body: OpenIdBody, request: Request, response: Response) -> SignedIn:
    """Sign in with a Matrix OpenID token; answers a Hearth session token (also set as a cookie)."""
    auth = staff_auth(request)
    client = request.client.host if request.client else "unknown"
    token, who, expires = await auth.sign_in(body.access_token, body.matrix_server_name, client)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(auth.lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return SignedIn(
        token=token, user_id=who.user_id, role=who.role, display_name=who.display_name, expires_at=expires
    )


@router.get("/me", response_model=Me)
async def me(who: Principal = Depends(signed_in)) -> Me:
    """Who the session belongs to, and their role."""
    return Me(user_id=who.user_id, role=who.role, display_name=who.display_name)


@router.post("/sign-out", response_model=SignedOut)
async def sign_out(request: Request, response: Response, who: Principal = Depends(signed_in)) -> SignedOut:
    """End this session (its token and cookie stop working)."""
    await staff_auth(request).sign_out(who)
    response.delete_cookie(COOKIE, path="/")
    return SignedOut(signed_out=True)
