"""Typed Matrix identifiers shared by every package (habit 7: Matrix IDs are typed)."""

from typing import NewType

RoomID = NewType("RoomID", str)
UserID = NewType("UserID", str)
EventID = NewType("EventID", str)
RoomAlias = NewType("RoomAlias", str)
