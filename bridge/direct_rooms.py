"""The bot's private 1:1 rooms with members (crisis resources, kind warnings), remembered in its
``m.direct`` account data.

Opening a private room is the homeserver's heaviest request (a new room: about ten state events).
It used to run under one lock for everyone, so when several people reached out at once, each
waited for the others' rooms before being offered help: seconds apiece under load. Now:

- one member's calls are serialised (two crises from one person must not open two rooms);
- different members' rooms are opened concurrently;
- only the read-modify-write of ``m.direct`` (one JSON object for everyone, replaced whole on each
  write) is serialised across members, so no concurrent opening drops another's entry.
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


class DirectGateway(Protocol):
    """What this module needs of ``bridge.gateway.NioGateway``."""

    @property
    def user_id(self) -> str: ...

    async def get_account_data(self, event_type: str) -> dict[str, Any] | None: ...
    async def set_account_data(self, event_type: str, content: dict[str, Any]) -> None: ...
    async def get_state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None: ...
    async def create_private_room(self, *, is_direct: bool = False) -> RoomID: ...
    async def invite(self, room_id: str, user_id: str) -> None: ...


class DirectRooms:
    REFRESH_SECONDS = 10.0  # an unknown room re-reads m.direct at most this often

    def __init__(self, gateway: DirectGateway) -> None:
        self.gateway = gateway
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
            room = await self.gateway.create_private_room(is_direct=True)
            await self._remember(user, room)
            self._owners[room] = user
            await self.gateway.invite(room, user)
            log.info("opened a private room %s", room)
            return room

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
