"""A new member's trust period limits mentions: a few people per message, never the whole room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.screening import mentions_room
from config.ids import EventID, RoomID, UserID
from moderation.trust import MentionLimit, mention_refusal
from moderation.types import Message

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LIMIT = MentionLimit(users=3, minutes=60)


def msg(mentions: int = 0, *, room: bool = False, joined_minutes_ago: float | None = 5) -> Message:
    joined = None if joined_minutes_ago is None else T0 - timedelta(minutes=joined_minutes_ago)
    return Message(
        EventID("$e"),
        RoomID("!r"),
        UserID("@new:localhost"),
        "hi",
        T0,
        sender_joined_at=joined,
        mentions=mentions,
        mentions_room=room,
    )


def test_up_to_the_limit_goes_one_more_is_refused_kindly():
    assert mention_refusal(msg(3), LIMIT) is None
    refusal = mention_refusal(msg(4), LIMIT)
    assert refusal is not None
    assert "up to 3 people" in refusal
    assert "Welcome" in refusal


def test_the_whole_room_never_in_the_trust_period():
    refusal = mention_refusal(msg(0, room=True), LIMIT)
    assert refusal is not None
    assert "@room" in refusal


def test_after_the_trust_period_or_with_no_known_join_the_limit_does_not_apply():
    assert mention_refusal(msg(10, room=True, joined_minutes_ago=60), LIMIT) is None
    assert mention_refusal(msg(10, joined_minutes_ago=None), LIMIT) is None


def test_a_room_mention_is_m_mentions_room_or_legacy_at_room_text():
    assert mentions_room({"body": "hello @room", "m.mentions": {"room": True}})
    assert not mentions_room({"body": "hello @room", "m.mentions": {}})  # intentional mentions say no
    assert mentions_room({"body": "hello @room"})  # a client without intentional mentions
    assert not mentions_room({"body": "ask @roommate about it"})
