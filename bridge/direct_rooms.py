"""The bot's private 1:1 rooms with members (crisis resources, kind warnings), remembered in its
``m.direct`` account data.

Opening a private room is the homeserver's heaviest request (a new room: about ten state events).
It used to run under one lock for everyone, so when several people reached out at once, each
waited for the others' rooms before being offered help: seconds apiece under load. Now:

- one member's calls are serialised (two crises from one person must not open two rooms);
- different members' rooms are opened concurrently;
- only the read-modify-write of ``m.direct`` (one JSON object for everyone, replaced whole on each
  write) is serialised across members, so no concurrent opening drops another's entry.

And a person in crisis does not wait for a room to be built: a small pool of empty private rooms is
kept ready (``escalation.care_room_pool``, remembered in the bot's ``org.hearth.room_pool`` account
data, so a restart reuses them). A first crisis takes one: one invite (with ``is_direct``) and the
``m.direct`` write, instead of a room creation's ten state events; the pool is refilled in the
background. Rooms grow with the people ever helped plus the pool, never with messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from config.ids import RoomID

log = logging.getLogger(__name__)

# A member's private room is theirs and the bot's (and a clinician's, whom the bot invites): the
# member may not invite anyone into it. The gate refuses members' invites on Hearth's server; a
# member of another server invites through their own server, which only the room's power levels stop.
MEMBERS_MAY_NOT_INVITE = 50


class DirectGateway(Protocol):
    """What this module needs of ``bridge.gateway.NioGateway``."""

    @property
    def user_id(self) -> str: ...

    async def get_account_data(self, event_type: str) -> dict[str, Any] | None: ...
    async def set_account_data(self, event_type: str, content: dict[str, Any]) -> None: ...
    async def get_state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None: ...
    async def create_private_room(
        self, *, is_direct: bool = False, invite_level: int | None = None
    ) -> RoomID: ...
    async def invite(self, room_id: str, user_id: str) -> None: ...
    async def invite_direct(self, room_id: str, user_id: str) -> None: ...


class DirectRooms:
    REFRESH_SECONDS = 10.0  # an unknown room re-reads m.direct at most this often

    POOL_EVENT = "org.hearth.room_pool"

    def __init__(self, gateway: DirectGateway, pool_size: int = 0) -> None:
        self.gateway = gateway
        self.pool_size = pool_size
        self._pool: list[str] | None = None  # ready rooms (None: not read from account data yet)
        self._pool_lock = asyncio.Lock()
        self._pool_wanted = asyncio.Event()
        self._owners: dict[str, str] = {}  # room -> the member it is the bot's private room with
        self._owners_read_at = float("-inf")
        self._members: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # user -> (lock, [holders+waiters])
        self._direct_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def _one_member(self, user: str) -> AsyncIterator[None]:
        lock, users = self._members.setdefault(user, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:  # nobody holds or awaits it: forget it (no growth with the member count)
                del self._members[user]

    async def room_for(self, user: str) -> RoomID:
        """The bot's 1:1 room with ``user``: a remembered one the bot is still in and ``user`` is not
        banned from (re-inviting ``user`` if they left), else a new invite-only room, remembered in
        ``m.direct`` before ``user`` is invited (so a failed invite is retried in the same room)."""
        async with self._one_member(user):
            direct = await self.gateway.get_account_data("m.direct") or {}
            for candidate in direct.get(user) or []:
                bot = await self.gateway.get_state_event(candidate, "m.room.member", self.gateway.user_id)
                if not bot or bot.get("membership") != "join":
                    continue
                member = await self.gateway.get_state_event(candidate, "m.room.member", user)
                membership = (member or {}).get("membership")
                if membership == "ban":
                    continue
                if membership not in ("join", "invite"):
                    await self.gateway.invite(candidate, user)
                self._owners[candidate] = user
                return RoomID(candidate)
            pooled = await self._take_pooled()
            if pooled is not None:
                await self._remember(user, pooled)
                self._owners[pooled] = user
                await self.gateway.invite_direct(pooled, user)
                log.info("gave a ready private room %s", pooled)
                return pooled
            room = await self.gateway.create_private_room(is_direct=True, invite_level=MEMBERS_MAY_NOT_INVITE)
            await self._remember(user, room)
            self._owners[room] = user
            await self.gateway.invite(room, user)
            log.info("opened a private room %s", room)
            return room

    # --- the pool of ready rooms -----------------------------------------------------------

    async def _read_pool(self) -> list[str]:
        if self._pool is None:
            stored = await self.gateway.get_account_data(self.POOL_EVENT) or {}
            rooms = stored.get("rooms")
            self._pool = [r for r in rooms if isinstance(r, str)] if isinstance(rooms, list) else []
        return self._pool

    async def _take_pooled(self) -> RoomID | None:
        if self.pool_size <= 0:
            return None
        async with self._pool_lock:
            pool = await self._read_pool()
            if not pool:
                self._pool_wanted.set()
                return None
            room = pool.pop(0)
            await self.gateway.set_account_data(self.POOL_EVENT, {"rooms": list(pool)})
        self._pool_wanted.set()
        return RoomID(room)

    async def fill_pool(self) -> int:
        """Create rooms until ``pool_size`` are ready; returns how many were created."""
        made = 0
        while self.pool_size > 0:
            async with self._pool_lock:
                if len(await self._read_pool()) >= self.pool_size:
                    return made
            room = await self.gateway.create_private_room(
                is_direct=True, invite_level=MEMBERS_MAY_NOT_INVITE
            )  # outside the lock: slow
            async with self._pool_lock:
                pool = await self._read_pool()
                pool.append(room)
                await self.gateway.set_account_data(self.POOL_EVENT, {"rooms": list(pool)})
            made += 1
        return made

    async def keep_pool_filled(self, retry_seconds: float = 5.0) -> None:
        """Background task: fill the pool now and whenever a room is taken (failures retried)."""
        while self.pool_size > 0:
            try:
                if made := await self.fill_pool():
                    log.info("%d private room(s) made ready", made)
            except Exception as e:  # the homeserver may be down: a crisis then opens a room the slow way
                log.warning("could not fill the private-room pool: %s", e)
                await asyncio.sleep(retry_seconds)
                continue
            self._pool_wanted.clear()
            await self._pool_wanted.wait()

    async def is_private_room(self, user: str, room: str) -> bool:
        """Whether ``room`` is one of the bot's remembered 1:1 rooms with ``user`` (``m.direct``).

        Answered from a cache of ``m.direct`` (every message in every room asks): a room not in it
        re-reads the account data at most every ``REFRESH_SECONDS``; rooms this process opens are
        added at once."""
        if room not in self._owners and time.monotonic() - self._owners_read_at >= self.REFRESH_SECONDS:
            self._owners_read_at = time.monotonic()
            direct = await self.gateway.get_account_data("m.direct") or {}
            self._owners = {r: u for u, rooms in direct.items() if isinstance(rooms, list) for r in rooms}
        return self._owners.get(room) == user

    async def _remember(self, user: str, room: RoomID) -> None:
        async with self._direct_lock:  # re-read inside: another member's room may have been added
            direct = await self.gateway.get_account_data("m.direct") or {}
            await self.gateway.set_account_data(
                "m.direct", {**direct, user: [room, *(direct.get(user) or [])]}
            )
