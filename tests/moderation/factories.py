"""Small builders for moderation tests."""

from __future__ import annotations

from datetime import UTC, datetime

from config.ids import EventID, RoomID, UserID
from moderation.normalize import normalize
from moderation.types import Message, ScreenItem

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
DISTRESSED_BURST = (
    "i cant do this",
    "everything is falling apart",
    "i dont want to be here anymore",
    "nobody would even notice if i was gone",
    "i keep thinking about ending it",
    "sorry for spamming",
    "i just cant stop crying",
    "please someone",
)
"""Eight messages of a member in distress, sent within 20 seconds (a flood) in the tests."""
_n = 0


def message(body: str, **kw: object) -> Message:
    global _n
    _n += 1
    fields: dict[str, object] = {
        "event_id": EventID(f"$ev{_n}"),
        "room_id": RoomID("!room:localhost"),
        "sender": UserID("@member:localhost"),
        "body": body,
        "sent_at": T0,
    }
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


def item(body: str, **kw: object) -> ScreenItem:
    m = message(body, **kw)
    return ScreenItem(m, normalize(m.body, m.formatted_body))
