"""Staff rooms (the clinicians' ``#hearth-staff`` and the moderators' ``#hearth-moderators``) and
the names alerts and review cards are written with.

A room is resolved by alias (and joined), or created invite-only and unencrypted with its members
invited at power level 50; provisioning reconciles it by alias later. :class:`Names` caches rooms'
and members' display names, never waiting on the homeserver more than 2 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import httpx

from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from config.ids import RoomID

log = logging.getLogger(__name__)

NAME_TIMEOUT_SECONDS = 2


class StaffRoom:
    """One staff room: ``alias`` (``#local:server``), its name and topic, and who belongs in it."""

    def __init__(self, gateway: NioGateway, *, alias: str, name: str, topic: str, members: Sequence[str]):
        self.gateway = gateway
        self.alias = alias
        self.name = name
        self.topic = topic
        self.members = tuple(members)
        self.room_id: RoomID | None = None
        self._lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Resolve or create the room at start-up, retrying with backoff until the homeserver answers."""
        delay = 0.5
        while True:
            try:
                await self.ensure()
                return
            except (GatewayError, TimeoutError, OSError) as e:
                log.warning("staff room %s not ready (%s); retrying in %.1fs", self.alias, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    async def ensure(self) -> RoomID:
        """The room's ID: resolved by alias (and joined), or created invite-only and unencrypted with
        its members invited at power level 50."""
        if self.room_id is not None:
            return self.room_id
        async with self._lock:
            if self.room_id is not None:
                return self.room_id
            room = await self.gateway.resolve_alias(self.alias)
            if room is None:
                localpart = self.alias[1:].split(":", 1)[0]
                try:
                    room = await self.gateway.create_private_room(
                        name=self.name,
                        alias=localpart,
                        topic=self.topic,
                        power_users=dict.fromkeys(self.members, 50),
                    )
                    log.info("created the staff room %s (%s)", self.alias, room)
                except GatewayError as e:
                    if e.errcode != "M_ROOM_IN_USE":
                        raise
                    room = await self.gateway.resolve_alias(self.alias)  # created concurrently
                    if room is None:
                        raise
            else:
                await self.gateway.join(room)
            if await self.gateway.get_state_event(room, "m.room.encryption") is not None:
                log.error("staff room %s is encrypted: the bot cannot post readable alerts there", self.alias)
            await self._invite_missing_staff(room)
            self.room_id = room
            return room

    async def invite_missing_staff(self) -> None:
        """Invite whoever ``members`` lists and is not in the room yet (after a staff file reload);
        nothing before the room is resolved (``ensure`` invites them then)."""
        if self.room_id is not None:
            await self._invite_missing_staff(self.room_id)

    async def _invite_missing_staff(self, room: RoomID) -> None:
        for user in self.members:
            try:
                member = await self.gateway.get_state_event(room, "m.room.member", user)
                if member and member.get("membership") in ("join", "invite", "ban"):
                    continue
                await self.gateway.invite(room, user)
            except GatewayError as e:  # e.g. an account not registered yet: provisioning reconciles later
                log.warning("could not invite %s to %s: %s", user, self.alias, e)

    async def notice(self, text: str) -> None:
        """A plain ``m.notice`` in the room. Best effort: failures are logged, not retried
        (escalations go through the outbox instead)."""
        try:
            room = await self.ensure()
            await self.gateway.send(room, {"msgtype": "m.notice", "body": text, "m.mentions": {}})
        except (GatewayError, TimeoutError, OSError) as e:
            log.warning("could not post a notice in %s: %s", self.alias, e)


async def reply_notice(gateway: NioGateway, ev: TimelineEvent, text: str) -> None:
    """Answer a staff member's command or reaction: an ``m.notice`` in reply, mentioning them (once per
    event: the transaction ID is the event's)."""
    content = {
        "msgtype": "m.notice",
        "body": text,
        "m.mentions": {"user_ids": [ev.sender]},
        "m.relates_to": {"m.in_reply_to": {"event_id": ev.event_id}},
    }
    try:
        await gateway.send(ev.room_id, content, txn_id=f"hearth.reply.{ev.event_id}")
    except GatewayError as e:
        log.warning("could not reply to %s: %s", ev.event_id, e)


class Names:
    """Rooms' and members' display names, cached; None when there is none or the homeserver does
    not answer within 2 s (an alert never waits longer for a name)."""

    def __init__(self, gateway: NioGateway):
        self.gateway = gateway
        self.rooms: dict[str, str | None] = {}
        self.members: dict[tuple[str, str], str | None] = {}

    async def room(self, room_id: str) -> str | None:
        if room_id not in self.rooms:
            try:
                state = await asyncio.wait_for(
                    self.gateway.get_state_event(room_id, "m.room.name"), NAME_TIMEOUT_SECONDS
                )
                name = state.get("name") if state else None
                self.rooms[room_id] = str(name) if name else None
            except (GatewayError, TimeoutError, httpx.HTTPError):
                return None  # not cached: try again next time
        return self.rooms[room_id]

    async def member(self, room_id: str, user: str) -> str | None:
        """The member's display name in that room (their ``m.room.member`` state)."""
        key = (room_id, user)
        if key not in self.members:
            try:
                state = await asyncio.wait_for(
                    self.gateway.get_state_event(room_id, "m.room.member", user), NAME_TIMEOUT_SECONDS
                )
                name = state.get("displayname") if state else None
                self.members[key] = str(name).strip()[:100] or None if name else None
            except (GatewayError, TimeoutError, httpx.HTTPError):
                return None  # not cached: try again next time
        return self.members[key]
