"""The way in: single-use registration tokens from Synapse's admin API, handed out on ``/join``
(rate-limited per address) and by ``hearth accounts token`` for operators.

Synapse runs with ``registration_requires_token: true``: a person registers in Element with the
token, a username of their choosing and a password; no email, no real name. A token is made for one
use and expires (``join.token_expiry_hours``); Hearth keeps nothing about who asked for it.
"""

from __future__ import annotations

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

from bridge.clock import Clock
from bridge.gateway import GatewayError, NioGateway

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


class JoinDesk:
    """``POST /api/join``: one token per request, at most ``tokens_per_address`` per address."""

    def __init__(self, gateway: NioGateway, clock: Clock, *, per_address: str, expiry: timedelta):
        self.gateway = gateway
        self.clock = clock
        self.expiry = expiry
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limit = parse(per_address)

    async def token_for(self, address: str) -> Token:
        if not await self._limiter.hit(self._limit, "join", address):
            stats = await self._limiter.get_window_stats(self._limit, "join", address)
            wait = max(1, int(stats.reset_time - time.time()))
            raise TooMany(wait)
        token = await new_token(self.gateway, uses=1, expires_at=self.clock.now() + self.expiry)
        log.info("registration token handed out on /join")  # never the token or the address
        return token


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
