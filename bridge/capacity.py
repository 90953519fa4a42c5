"""Room capacity, enforced at the gate: a join beyond ``org.hearth.room.scene.capacity`` is refused.

Synapse asks ``user_may_join_room`` before every join by a non-admin. The check answers from the
catalogue (``provisioned_room``: room ID -> capacity, written by provisioning) and a joined-member
count read through Synapse's admin API, both cached briefly so the gate stays fast. Rooms Hearth did
not provision are not its business (allowed), staff and the bot are never refused, and when the
count cannot be read in time the join is allowed: capacity is about comfort, not safety.

Synapse asks only about its own users' joins: another server's member joins without the gate, and
the bot removes them afterwards if the room was full (``bridge.remote_joins``, with the same words).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge import db
from bridge.gate import Answer, reject
from spaces.models import ProvisionedRoom

log = logging.getLogger(__name__)

# How long the capacity table and a room's member count are trusted before being read again.
CATALOGUE_TTL_SECONDS = 2.0
MEMBERS_TTL_SECONDS = 2.0
# Budget for reading a member count; past it the join is allowed.
COUNT_TIMEOUT_SECONDS = 1.0

FULL_ROOM_TEXT = (
    "This room is full right now. Please try again a little later, or join another room of the space."
)


class AdminAPI(Protocol):
    async def admin(self, method: str, path: str, json: Any = None) -> Any: ...


@dataclass
class _Count:
    members: set[str]
    read_at: float


class CapacityCheck:
    """The ``user_may_join_room`` check: refuse joins that would exceed a room's capacity."""

    def __init__(
        self,
        engine: Engine,
        admin: AdminAPI,
        *,
        bot: str,
        staff: Set[str],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.admin = admin
        self.bot = bot
        self.staff = staff  # kept, not copied: a staff file reload applies (a live view, see service)
        self.monotonic = monotonic
        self._capacity: dict[str, int] = {}
        self._capacity_read_at: float | None = None
        self._counts: dict[str, _Count] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def capacity_of(self, room_id: str) -> int | None:
        """The room's capacity from the catalogue, or None for a room Hearth did not provision."""
        now = self.monotonic()
        stale = self._capacity_read_at is None or now - self._capacity_read_at > CATALOGUE_TTL_SECONDS
        if stale or room_id not in self._capacity:

            def read(session: Session) -> dict[str, int]:
                return {r.room_id: r.capacity for r in session.exec(select(ProvisionedRoom))}

            # A miss re-reads at most once per second, so unknown rooms do not hammer the database.
            if stale or self._capacity_read_at is None or now - self._capacity_read_at > 1.0:
                self._capacity = await db.run_db(self.engine, read)
                self._capacity_read_at = now
        return self._capacity.get(room_id)

    async def _members(self, room_id: str) -> set[str]:
        cached = self._counts.get(room_id)
        now = self.monotonic()
        if cached is not None and now - cached.read_at <= MEMBERS_TTL_SECONDS:
            return cached.members
        path = f"/_synapse/admin/v1/rooms/{quote(room_id, safe='')}/members"
        body = await asyncio.wait_for(self.admin.admin("GET", path), COUNT_TIMEOUT_SECONDS)
        members = {str(m) for m in body.get("members", [])}
        self._counts[room_id] = _Count(members, now)
        return members

    async def __call__(self, payload: dict[str, Any]) -> Answer | None:
        """Gate check: ``payload`` is ``{"user", "room", "is_invited"}``; None lets the join through."""
        user, room_id = str(payload.get("user", "")), str(payload.get("room", ""))
        if not room_id or user == self.bot or user in self.staff:
            return None
        capacity = await self.capacity_of(room_id)
        if capacity is None:
            return None
        # One decision per room at a time, so a burst of joins cannot overshoot.
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            try:
                members = await self._members(room_id)
            except Exception as e:  # the count is unavailable: allow (comfort, not safety)
                log.warning("capacity: cannot count members of %s (%s); allowing the join", room_id, e)
                return None
            if user in members:
                return None
            participants = len(members - {self.bot})
            if participants >= capacity:
                status, body = reject(FULL_ROOM_TEXT, "capacity")
                return status, {**body, "org.hearth.capacity": capacity}
            # Count the join we allow until the next read, so quick successive joins see it.
            members.add(user)
            return None

    def saw(self, room_id: str, user: str, *, joined: bool) -> None:
        """A join the gate was not asked about (another server's member), or its removal: the cached
        count follows at once, so local joins right after it are counted against it."""
        cached = self._counts.get(room_id)
        if cached is not None:
            if joined:
                cached.members.add(user)
            else:
                cached.members.discard(user)
