"""The way in: single-use registration tokens from Synapse's admin API, handed out on ``/join``
(rate-limited per address) and by ``hearth accounts token`` for operators.

With ``join.require_approval`` a request on ``/join`` is held for an operator instead: it gets a
secret ID to poll with and a short reference; ``hearth accounts pending`` lists the references,
``hearth accounts approve|refuse <reference>`` decides (approving makes the single-use token, which
the asker's page then shows). Nothing about who asked is stored; the rate limit per address lives
in memory only.

Synapse runs with ``registration_requires_token: true``: a person registers in Element with the
token, a username of their choosing and a password; no email, no real name. A token is made for one
use and expires (``join.token_expiry_hours``); Hearth keeps nothing about who asked for it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from bridge.clock import Clock, SystemClock
from bridge.db import make_engine, migrate, run_db
from bridge.gateway import GatewayError, NioGateway
from bridge.models import JoinRequest

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Token:
    token: str
    uses_allowed: int | None
    expires_at: datetime | None


class TooMany(Exception):
    """This address asked for too many tokens; ``retry_after`` seconds until the next."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many tokens from this address; try again in {retry_after} s")
        self.retry_after = retry_after


async def new_token(
    gateway: NioGateway, *, uses: int | None = 1, expires_at: datetime | None = None
) -> Token:
    """A registration token from Synapse (``POST /_synapse/admin/v1/registration_tokens/new``)."""
    body: dict[str, object] = {"uses_allowed": uses}
    if expires_at is not None:
        body["expiry_time"] = int(expires_at.timestamp() * 1000)
    made = await gateway.admin("POST", "/_synapse/admin/v1/registration_tokens/new", body)
    return Token(str(made["token"]), uses, expires_at)


class JoinRequestError(Exception):
    """An operator's decision that cannot be made (unknown, decided or expired reference)."""


class JoinDesk:
    """``POST /api/join``: one token per request (or one held request, with ``require_approval``), at
    most ``tokens_per_address`` per address."""

    def __init__(
        self,
        gateway: NioGateway,
        clock: Clock,
        *,
        per_address: str,
        expiry: timedelta,
        engine: Engine | None = None,
        request_expiry: timedelta = timedelta(hours=72),
    ):
        self.gateway = gateway
        self.clock = clock
        self.expiry = expiry
        self.engine = engine
        self.request_expiry = request_expiry
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limit = parse(per_address)

    async def _count(self, address: str) -> None:
        if not await self._limiter.hit(self._limit, "join", address):
            stats = await self._limiter.get_window_stats(self._limit, "join", address)
            wait = max(1, int(stats.reset_time - time.time()))
            raise TooMany(wait)

    async def token_for(self, address: str) -> Token:
        await self._count(address)
        token = await new_token(self.gateway, uses=1, expires_at=self.clock.now() + self.expiry)
        log.info("registration token handed out on /join")  # never the token or the address
        return token

    async def request_for(self, address: str) -> JoinRequest:
        """A request held for an operator (``join.require_approval``)."""
        assert self.engine is not None
        await self._count(address)
        now = self.clock.now()
        expires = now + self.request_expiry

        def write(s: Session) -> JoinRequest:
            reference = secrets.token_hex(3)
            while s.exec(select(JoinRequest).where(JoinRequest.reference == reference)).first() is not None:
                reference = secrets.token_hex(3)
            row = JoinRequest(
                id=secrets.token_urlsafe(24), reference=reference, created_at=now, expires_at=expires
            )
            s.add(row)
            return row

        row = await run_db(self.engine, write)
        log.info("a sign-up code request is waiting for an operator (%s)", row.reference)
        return row

    async def poll(self, request_id: str) -> JoinRequest | None:
        """The request ``request_id`` while it is kept (None: unknown, or forgotten)."""
        assert self.engine is not None
        now = self.clock.now()
        row = await run_db(self.engine, lambda s: s.get(JoinRequest, request_id))
        return row if row is not None and row.expires_at > now else None


def pending_requests(session: Session, now: datetime) -> list[JoinRequest]:
    """Requests waiting for an operator, oldest first."""
    q = select(JoinRequest).where(JoinRequest.status == "pending", col(JoinRequest.expires_at) > now)
    return list(session.exec(q.order_by(col(JoinRequest.created_at))))


def purge_requests(session: Session, now: datetime) -> int:
    """Forget requests past their time (an approved one when its token has expired)."""
    res = session.execute(delete(JoinRequest).where(col(JoinRequest.expires_at) <= now))
    return int(getattr(res, "rowcount", 0) or 0)


def _request_by(session: Session, reference: str, now: datetime) -> JoinRequest:
    row = session.exec(select(JoinRequest).where(JoinRequest.reference == reference.strip().lower())).first()
    if row is None or row.expires_at <= now:
        raise JoinRequestError(f"no request {reference!r} is waiting (`hearth accounts pending` lists them)")
    if row.status != "pending":
        raise JoinRequestError(f"request {row.reference} was {row.status} already")
    return row


async def list_requests(settings: Settings) -> list[JoinRequest]:
    """``hearth accounts pending``."""
    engine = make_engine(settings.effective_database_url)
    try:
        await asyncio.to_thread(migrate, engine)
        now = SystemClock(settings.clock_offset_file).now()
        return await run_db(engine, lambda s: pending_requests(s, now))
    finally:
        engine.dispose()


async def decide_request(settings: Settings, reference: str, *, approve: bool) -> JoinRequest:
    """``hearth accounts approve|refuse <reference>``: approving makes the single-use token (with the
    bot's account, a server admin) that the asker's page then shows."""
    from bridge.provisioning import bot_gateway

    engine = make_engine(settings.effective_database_url)
    try:
        await asyncio.to_thread(migrate, engine)
        now = SystemClock(settings.clock_offset_file).now()
        await run_db(engine, lambda s: _request_by(s, reference, now))  # refused before any token is made
        token: Token | None = None
        if approve:
            gateway = await bot_gateway(settings)
            try:
                expiry = now + timedelta(hours=settings.join.token_expiry_hours)
                token = await new_token(gateway, uses=1, expires_at=expiry)
            finally:
                await gateway.close()

        def write(s: Session) -> JoinRequest:
            row = _request_by(s, reference, now)
            row.status, row.decided_at = ("approved" if approve else "refused"), now
            if token is not None:
                row.token, row.token_expires_at = token.token, token.expires_at
                row.expires_at = max(row.expires_at, token.expires_at or row.expires_at)
            s.add(row)
            return row

        return await run_db(engine, write)
    finally:
        engine.dispose()


async def operator_token(settings: Settings, *, uses: int | None, expires_in: timedelta | None) -> Token:
    """``hearth accounts token``: a token made with the bot's account (a server admin)."""
    from bridge.provisioning import bot_gateway

    gateway = await bot_gateway(settings)
    try:
        expires = datetime.now(UTC) + expires_in if expires_in is not None else None
        return await new_token(gateway, uses=uses, expires_at=expires)
    finally:
        await gateway.close()


async def register_staff(settings: Settings, user_id: str, display_name: str) -> str | None:
    """``hearth accounts staff``: the account through Synapse's admin API (made if missing, with a
    generated password, returned once; an existing account keeps its password), its display name set."""
    from bridge.provisioning import bot_gateway

    gateway = await bot_gateway(settings)
    path = f"/_synapse/admin/v2/users/{quote(user_id, safe='')}"
    try:
        try:
            await gateway.admin("GET", path)
            exists = True
        except GatewayError as e:
            if e.status != 404:
                raise
            exists = False
        password = None if exists else secrets.token_urlsafe(15)
        body: dict[str, object] = {"displayname": display_name}
        if password is not None:
            body |= {"password": password, "admin": False}
        await gateway.admin("PUT", path, body)
        return password
    finally:
        await gateway.close()
