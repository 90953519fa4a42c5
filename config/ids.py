"""Typed Matrix identifiers shared by every package (habit 7: Matrix IDs are typed)."""

from typing import NewType

RoomID = NewType("RoomID", str)
UserID = NewType("UserID", str)
EventID = NewType("EventID", str)
RoomAlias = NewType("RoomAlias", str)


def server_of(user_id: str) -> str:
    """The homeserver part of a Matrix user ID (``@ana:127.0.0.1:8448`` -> ``127.0.0.1:8448``)."""
    return user_id.split(":", 1)[1] if ":" in user_id else ""
