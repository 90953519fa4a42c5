"""A new member's trust period: for the first ``[behaviour] new_member_minutes`` after joining a room
(``config/policy.toml``) they may share no links or media (the behaviour detector), may mention at most
``moderation.new_member_mention_limit`` people in one message, and never the whole room (``@room``).
A spammer who has just arrived cannot ping a room of people who came for support.

Pure: the message carries its own ``sent_at`` and the sender's join time; the gate applies it after
the pipeline, and never to a message read as crisis (a person in crisis is never silenced)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from moderation.types import Message


@dataclass(frozen=True)
class MentionLimit:
    """At most ``users`` people mentioned per message during the first ``minutes`` in a room."""

    users: int
    minutes: float


def mention_refusal(message: Message, limit: MentionLimit) -> str | None:
    """The kind explanation to refuse ``message`` with, or None when it may go."""
    joined = message.sender_joined_at
    if joined is None or message.sent_at - joined >= timedelta(minutes=limit.minutes):
        return None
    if message.mentions_room:
        return (
            "Welcome! New members can't notify the whole room, so your message wasn't sent. Please write "
            "it without @room; the people here will still see it."
        )
    if message.mentions > limit.users:
        people = "one person" if limit.users == 1 else f"{limit.users} people"
        return (
            f"Welcome! In your first while here you can mention up to {people} in a message, so this one "
            "wasn't sent. Please mention only the people you're talking to; everyone here can still read it."
        )
    return None
