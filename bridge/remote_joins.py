"""Another server's member joining a Hearth room: what the gate does for local joins, done after the join.

Synapse asks ``user_may_join_room`` only for its own users, so a member of another server ("remote
member") joins without the gate's capacity check. The bot acts when it sees the join:

- **Capacity**: if the room already had as many participants as its capacity when they joined (the
  room's members at their join event, not counting the bot or them), the bot removes them at once
  with the gate's kind words (``bridge.capacity.FULL_ROOM_TEXT``). It is a kick, not a ban, and
  nothing is recorded against them: they may join again when there is room. Staff and the bot are
  never removed. The decision is read from the room's state *at the join event*, so a restart that
  replays the join decides the same way whatever happened since; and only a membership that is still
  that join is removed, so a replay never removes anyone twice or removes a later, legitimate join.
- **Welcome**: a join that stands is handed to ``bridge.welcome.Welcome.remote_join`` (the welcome
  and the guidelines, as for any first join to a space).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from bridge.capacity import FULL_ROOM_TEXT
from bridge.gateway import GatewayError, TimelineEvent
from config.ids import UserID, server_of

if TYPE_CHECKING:
    from bridge.welcome import Welcome

log = logging.getLogger(__name__)


class Capacities(Protocol):
    """What the bot asks of ``bridge.capacity.CapacityCheck``."""

    async def capacity_of(self, room_id: str) -> int | None: ...

    def saw(self, room_id: str, user: str, *, joined: bool) -> None: ...


class Rooms(Protocol):
    """What the bot asks of the homeserver (``bridge.gateway.NioGateway``)."""

    user_id: UserID

    async def members_at(self, room_id: str, event_id: str) -> set[UserID]: ...

    async def member_event(self, room_id: str, user_id: str) -> dict[str, Any] | None: ...

    async def kick(self, room_id: str, user_id: str, reason: str | None = None) -> None: ...


def is_remote_join(event: dict[str, Any], server_name: str) -> bool:
    """Whether ``event`` (client format) is a user of another server joining (pure). A join that
    follows a join (a new display name or avatar) is not a join."""
    content = event.get("content")
    sender = str(event.get("sender", ""))
    if event.get("type") != "m.room.member" or not isinstance(content, dict):
        return False
    if content.get("membership") != "join" or event.get("state_key") != sender:
        return False
    before = ((event.get("unsigned") or {}).get("prev_content") or {}).get("membership")
    return before != "join" and server_of(sender) not in ("", server_name)


def over_capacity(members_at_join: Iterable[str], joiner: str, *, bot: str, capacity: int) -> bool:
    """Whether a join went beyond ``capacity``: the participants already there when it happened (the
    members just after it, but the bot and the joiner) had filled the room (pure). The gate's rule
    for local joins, which counts staff as participants too."""
    return len(set(members_at_join) - {bot, joiner}) >= capacity


class RemoteJoins:
    """Bot handler: removes a remote member who joined a full room; welcomes one who joined with room."""

    def __init__(self, gateway: Rooms, capacity: Capacities, welcome: Welcome, *, staff: Iterable[str]):
        self.gateway = gateway
        self.capacity = capacity
        self.welcome = welcome
        self.server_name = server_of(gateway.user_id)
        self.staff = staff  # kept, not copied: a staff file reload applies (a live view, see service)

    async def handle_event(self, ev: TimelineEvent) -> None:
        event = {**ev.event, "room_id": ev.room_id}
        exempt = ev.sender == self.gateway.user_id or ev.sender in self.staff
        if exempt or not is_remote_join(event, self.server_name):
            return
        if await self._removed_if_full(ev):
            return
        await self.welcome.remote_join(ev.sender, ev.room_id)

    async def _removed_if_full(self, ev: TimelineEvent) -> bool:
        """True if this join went beyond the room's capacity (the member is removed, if still there)."""
        capacity = await self.capacity.capacity_of(ev.room_id)
        if capacity is None:
            return False  # not a room Hearth provisioned
        try:
            members = await self.gateway.members_at(ev.room_id, ev.event_id)
        except (GatewayError, TimeoutError, OSError) as e:  # comfort, not safety: as the gate does
            log.warning(
                "capacity: cannot read the members of %s at %s (%s); the join stands",
                ev.room_id,
                ev.event_id,
                e,
            )
            return False
        if not over_capacity(members, ev.sender, bot=self.gateway.user_id, capacity=capacity):
            self.capacity.saw(ev.room_id, ev.sender, joined=True)
            return False
        try:
            current = await self.gateway.member_event(ev.room_id, ev.sender)
            if current is None or current.get("event_id") != ev.event_id:
                return (
                    True  # already removed (a replay), or left, or joined again since: that is another join
                )
            await self.gateway.kick(ev.room_id, ev.sender, reason=FULL_ROOM_TEXT)
        except (GatewayError, TimeoutError, OSError) as e:
            log.warning("capacity: could not remove %s from the full room %s: %s", ev.sender, ev.room_id, e)
            return True
        self.capacity.saw(ev.room_id, ev.sender, joined=False)
        log.info(
            "capacity: removed %s from %s (joined from another server when the room was full, %d places)",
            ev.sender,
            ev.room_id,
            capacity,
        )
        return True
