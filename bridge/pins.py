"""Keeping a message pinned: send it, pin it in place of the message its marker named before (other
pins stay), and record the marker (``{"sha256", "event_id"}``). Used by provisioning (guidelines,
guides, crisis lines, schedules) and by the sessions desk (a schedule a moderator changed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from bridge.gateway import NioGateway
from spaces.plan import Pinned

T = TypeVar("T")
# (kind, request, events it makes the homeserver send) -> the request's result; provisioning counts.
Request = Callable[[str, Awaitable[Any], int], Awaitable[Any]]


async def _plain(kind: str, call: Awaitable[T], events: int = 0) -> T:
    return await call


async def pin(
    gateway: NioGateway,
    room_id: str,
    pinned: Pinned,
    *,
    pins_before: Sequence[str],
    marker_before: Mapping[str, Any] | None,
    request: Request = _plain,
) -> list[str]:
    """Send and pin ``pinned`` in ``room_id``; returns the room's new pinned list."""
    event_id = await request("send", gateway.send(room_id, pinned.content), 1)
    old = (marker_before or {}).get("event_id")
    now_pinned = [str(event_id), *(p for p in pins_before if p != old)]
    await request("put_state", gateway.put_state(room_id, "m.room.pinned_events", {"pinned": now_pinned}), 1)
    event_type, key = pinned.marker
    await request(
        "put_state",
        gateway.put_state(room_id, event_type, {"sha256": pinned.sha256, "event_id": event_id}, key),
        1,
    )
    return now_pinned


async def ensure_pinned(gateway: NioGateway, room_id: str, pinned: Pinned) -> bool:
    """Pin ``pinned`` unless the room shows it pinned already (same hash); True when it pinned."""
    event_type, key = pinned.marker
    marker = await gateway.get_state_event(room_id, event_type, key)
    pins = await gateway.get_state_event(room_id, "m.room.pinned_events")
    state = {pinned.marker: marker or {}, ("m.room.pinned_events", ""): pins or {}}
    if pinned.is_pinned_in(state):
        return False
    await pin(gateway, room_id, pinned, pins_before=(pins or {}).get("pinned", []), marker_before=marker)
    return True
