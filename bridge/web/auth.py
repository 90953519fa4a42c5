"""Staff sign-in with their Matrix identity, and roles.

No new password: the staff page (or any client) asks the homeserver for an OpenID token
(``POST /_matrix/client/v3/user/{userId}/openid/request_token``) and hands it to
``POST /api/auth/openid``. Hearth checks it with the homeserver
(``GET /_matrix/federation/v1/openid/userinfo``), looks the person up in ``config/staff.toml``
(clinician, moderator or admin) and answers with a session token: a random session id, stored in
``staff_session`` and signed with ``staff_api.session_secret`` (itsdangerous). The token is also set
as an HttpOnly, SameSite=Strict, expiring cookie for the pages. Every request looks the role up again in
the staff file as Hearth last loaded it, so removing someone there and reloading Hearth (SIGHUP) or
restarting it ends their access, sessions included; signing out revokes the session.

Only accounts of Hearth's own homeserver sign in (its ``server_name``): a token for another server
would have to be checked with a server Hearth does not know. Failed sign-ins are limited per client
address (``staff_api.failed_sign_in_limit``, the ``limits`` library's moving window).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx
from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeSerializer
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlmodel import Session

from bridge.db import run_db
from bridge.models import StaffSession
from spaces.staff import Staff, StaffRole

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bridge.clock import Clock
    from config.settings import Settings

log = logging.getLogger(__name__)

Role = StaffRole
COOKIE = "hearth_session"
USERINFO = "/_matrix/federation/v1/openid/userinfo"


@dataclass(frozen=True)
class Principal:
    """The signed-in staff member a request acts as."""

    user_id: str
    role: Role
    display_name: str
    session_id: str


def _error(status: int, errcode: str, error: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, {"errcode": errcode, "error": error}, headers=headers)


class StaffAuth:
    """Signs staff in with Matrix OpenID and tells each request who it is from."""

    def __init__(self, settings: Settings, staff: Callable[[], Staff], engine: Engine, clock: Clock) -> None:
        cfg = settings.staff_api
        self._staff = staff  # asked on every request: a reloaded staff file applies at once
        self.engine = engine
        self.clock = clock
        self.server_name = settings.matrix.server_name
        self.homeserver_url = settings.matrix.homeserver_url.rstrip("/")
        self.lifetime = timedelta(minutes=cfg.session_minutes)
        self._signer = URLSafeSerializer(cfg.session_secret.get_secret_value(), salt="hearth.staff-session")
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limit = parse(cfg.failed_sign_in_limit)
        self._http = httpx.AsyncClient(timeout=10)

    @property
    def staff(self) -> Staff:
        """The staff file as last loaded well."""
        return self._staff()

    async def close(self) -> None:
        await self._http.aclose()

    # --- signing in ------------------------------------------------------------------------

    async def sign_in(
        self, access_token: str, server_name: str, client: str
    ) -> tuple[str, Principal, datetime]:
        """Check an OpenID token with the homeserver; returns (session token, who, expiry).
        Raises HTTPException 401/403/429/503 with a reason."""
        if not await self._limiter.test(self._limit, "sign-in", client):
            stats = await self._limiter.get_window_stats(self._limit, "sign-in", client)
            wait = max(1, int(stats.reset_time - self.clock.now().timestamp()))
            raise _error(
                429,
                "M_LIMIT_EXCEEDED",
                f"Too many failed sign-ins from here; try again in {wait} s.",
                {"Retry-After": str(wait)},
            )
        try:
            user_id = await self._check_with_homeserver(access_token, server_name)
            role = self.staff.role_of(user_id)
            if role is None:
                raise _error(
                    403, "M_FORBIDDEN", f"{user_id} is not listed as Hearth staff (config/staff.toml)."
                )
        except HTTPException as e:
            if e.status_code in (401, 403):
                await self._limiter.hit(self._limit, "sign-in", client)
                log.info("staff sign-in refused (%s) from %s", e.status_code, client)
            raise
        now = self.clock.now()
        session = StaffSession(
            id=secrets.token_urlsafe(32), user_id=user_id, created_at=now, expires_at=now + self.lifetime
        )

        def store(s: Session) -> None:
            s.add(session)

        await run_db(self.engine, store)
        log.info("staff sign-in: %s as %s", user_id, role)
        who = Principal(user_id, role, self.staff.display_names.get(user_id, user_id), session.id)
        return self._signer.dumps(session.id), who, session.expires_at

    async def _check_with_homeserver(self, access_token: str, server_name: str) -> str:
        if server_name != self.server_name:
            raise _error(
                403, "M_FORBIDDEN", f"Staff sign in with an account on {self.server_name}, not {server_name}."
            )
        try:
            r = await self._http.get(
                f"{self.homeserver_url}{USERINFO}", params={"access_token": access_token}
            )
        except httpx.HTTPError as e:
            raise _error(
                503,
                "HEARTH_HOMESERVER_UNAVAILABLE",
                f"The homeserver could not be asked about this sign-in ({type(e).__name__}); try again.",
            ) from None
        if r.status_code in (401, 403):
            raise _error(
                401,
                "M_UNKNOWN_TOKEN",
                "The homeserver did not recognise this OpenID token "
                "(expired or already used): request a new one.",
            )
        if r.status_code != 200:
            raise _error(
                503,
                "HEARTH_HOMESERVER_UNAVAILABLE",
                f"The homeserver answered HTTP {r.status_code} to the sign-in check; try again.",
            )
        try:
            sub = str(r.json()["sub"])
        except (ValueError, KeyError, TypeError):
            raise _error(
                503, "HEARTH_HOMESERVER_UNAVAILABLE", "The homeserver's answer had no user."
            ) from None
        if not sub.startswith("@") or sub.rsplit(":", 1)[-1] != self.server_name:
            raise _error(403, "M_FORBIDDEN", f"{sub} is not an account on {self.server_name}.")
        return sub

    # --- each request ----------------------------------------------------------------------

    async def principal(self, request: Request) -> Principal:
        """Who this request is from (``Authorization: Bearer <session token>`` or the cookie); 401 if nobody."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE, "")
        if not token:
            raise _error(
                401, "M_MISSING_TOKEN", "Sign in first: POST /api/auth/openid with a Matrix OpenID token."
            )
        try:
            session_id = str(self._signer.loads(token))
        except BadSignature:
            raise _error(
                401, "M_UNKNOWN_TOKEN", "This session token is not Hearth's: sign in again."
            ) from None
        row = await run_db(self.engine, lambda s: s.get(StaffSession, session_id))
        now = self.clock.now()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise _error(401, "M_UNKNOWN_TOKEN", "This session has ended: sign in again.")
        role = self.staff.role_of(row.user_id)
        if role is None:
            raise _error(403, "M_FORBIDDEN", f"{row.user_id} is no longer listed as Hearth staff.")
        return Principal(row.user_id, role, self.staff.display_names.get(row.user_id, row.user_id), row.id)

    async def sign_out(self, who: Principal) -> None:
        now = self.clock.now()

        def revoke(s: Session) -> None:
            row = s.get(StaffSession, who.session_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = now
                s.add(row)

        await run_db(self.engine, revoke)
        log.info("staff sign-out: %s", who.user_id)


def require_role(who: Principal, *roles: Role, what: str) -> Principal:
    """``who`` if their role is one of ``roles``, else 403 saying who may ``what``."""
    if who.role not in roles:
        raise _error(
            403,
            "M_FORBIDDEN",
            f"Only {' and '.join(r + 's' for r in roles)} may {what}; "
            f"{who.user_id} is signed in as {who.role}.",
        )
    return who
