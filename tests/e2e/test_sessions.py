"""Group sessions end to end (issue 18, item 5), on a real Synapse with the real Hearth and a
controllable clock (``clock_offset_file``): a moderator schedules a session in a (room version 12)
group-session room, which becomes read-only with its schedule pinned; a member opts in to reminders
and gets them a day and 15 minutes before; the facilitator says ``!start``; Hearth is down across
the start and opens the room when it comes back (the misfire policy catches the opening up), the
members post and are counted, and Hearth is down across the end and closes the room when it comes
back. A member's commands in the group room are answered privately; a practice level stays private."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from spaces.models import ProvisionedRoom
from spaces.sessions.tables import SessionOccurrence, SessionSeries
from tests.e2e.conftest import answered, bot_says, command, hearth_room, moderator, remove_catalogue_rooms
from tests.e2e.escalation_staff import join_private_room_with_the_bot
from tests.e2e.matrix import MatrixError, User, q, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _leave_the_stack_as_found(hearth_stack) -> Iterator[None]:
    yield
    (hearth_stack.layout.root / "clock_offset").write_text("0")
    remove_catalogue_rooms(hearth_stack, col(ProvisionedRoom.alias).startswith("#e2e-sessions-"))


def set_clock(hs, hearth_now: datetime) -> None:
    """Move Hearth's clock so that it reads ``hearth_now`` (it re-reads the offset file)."""
    (hs.layout.root / "clock_offset").write_text(str((hearth_now - datetime.now(UTC)).total_seconds()))


def events_default(hs, room: str) -> int:
    return int(
        hs.bot().call("GET", f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.power_levels/")[
            "events_default"
        ]
    )


def wait_posting(hs, room: str, level: int, what: str) -> None:
    wait_for(lambda: events_default(hs, room) == level, timeout=60, what=what)


def ask(hs, member: User, private: str, text: str, expect: str) -> str:
    body = answered(hs, member, private, {"msgtype": "m.text", "body": text})
    assert expect in body, body
    return body


def reminders(hs, member: User, private: str) -> list[dict]:
    return [
        ev["content"]
        for ev in member.messages(private, limit=100)
        if ev.get("sender") == hs.layout.bot_user_id
        and "Reminder:" in str((ev.get("content") or {}).get("body", ""))
    ]


def occurrence(hs, series_id: str) -> SessionOccurrence:
    with Session(hs.engine) as s:
        return s.exec(select(SessionOccurrence).where(SessionOccurrence.series_id == series_id)).one()


def test_a_session_reminds_opens_and_closes_on_the_clock_including_across_restarts(hearth_stack):
    hs = hearth_stack
    space = f"e2e-sessions-{secrets.token_hex(3)}"
    room = hearth_room(hs, space=space, prefix=f"{space}-", kind="group-session", room_version="12")
    assert events_default(hs, room) == 0  # as created: anyone may post, until sessions own it
    mod = moderator(hs)
    facilitator, member, late = hs.member("physio"), hs.member("attendee"), hs.member("latecomer")
    start = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    answer = command(
        hs,
        mod,
        f'!session add {space} "E2E stretch and move" once {start:%Y-%m-%d} at {start:%H:%M} UTC for 30m '
        f"format guided-exercise led by a chartered physiotherapist with {facilitator.user_id}",
    )
    series_id = re.search(r"Added ([0-9a-f]{6})", answer).group(1)  # type: ignore[union-attr]
    assert "Once" in answer, answer

    # Read-only between sessions (the creator of a version 12 room stays out of `users`), schedule pinned.
    wait_posting(hs, room, 50, "the group room to become read-only")
    levels = hs.bot().call("GET", f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.power_levels/")
    assert hs.layout.bot_user_id not in levels["users"]
    marker = hs.bot().call("GET", f"/_matrix/client/v3/rooms/{q(room)}/state/org.hearth.pin/schedule")
    pinned = hs.bot().call("GET", f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.pinned_events/")["pinned"]
    assert marker["event_id"] in pinned
    member.join(room)
    facilitator.join(room)  # two days early: not "present" yet (their welcome opens their private room)
    with pytest.raises(MatrixError) as refused:
        member.say(room, "Hello, is anyone here?")
    assert refused.value.status == 403

    private = join_private_room_with_the_bot(member)
    ask(hs, member, private, f"!remind {series_id}", "Reminders on for E2E stretch and move")
    listing = ask(hs, member, private, "!sessions", "E2E stretch and move")
    assert f"ID {series_id}, reminders on" in listing

    # A day before, then 15 minutes before: a private m.text each (so that it notifies).
    set_clock(hs, start - timedelta(hours=24) + timedelta(minutes=1))
    wait_for(lambda: len(reminders(hs, member, private)) == 1, timeout=60, what="the day-before reminder")
    set_clock(hs, start - timedelta(minutes=14))
    wait_for(lambda: len(reminders(hs, member, private)) == 2, timeout=60, what="the 15-minute reminder")
    day, soon = reversed(reminders(hs, member, private))
    assert "starts tomorrow" in day["body"]
    assert "in 15 minutes" in soon["body"]
    assert {day["msgtype"], soon["msgtype"]} == {"m.text"}

    # The facilitator arrives early; the room opens only at the start.
    host_room = join_private_room_with_the_bot(facilitator)
    ask(hs, facilitator, host_room, "!start", "you're marked as here for E2E stretch and move")
    assert events_default(hs, room) == 50

    # Down across the start: back up 2 minutes after it, the opening is caught up.
    hs.restart_hearth_at(lambda: set_clock(hs, start + timedelta(minutes=2)))
    wait_posting(hs, room, 0, "the room to open after the restart")
    assert occurrence(hs, series_id).status == "open"
    member.say(room, "Morning everyone, ready when you are.")
    late.join(room)
    late.say(room, "Sorry I'm late, joining in now.")
    # A member's command in the group room is answered privately and taken out of the room.
    command_event = late.say(room, "!sessions")
    late_private = join_private_room_with_the_bot(late)
    bot_says(
        hs,
        late,
        late_private,
        lambda ev: "E2E stretch and move" in ev["content"].get("body", ""),
        "the answer",
    )
    wait_for(
        lambda: (
            not hs.bot().call("GET", f"/_matrix/client/v3/rooms/{q(room)}/event/{q(command_event)}")[
                "content"
            ]
        ),
        timeout=30,
        what="the command to be redacted",
    )
    notices = [
        ev["content"]["body"]
        for ev in member.messages(room, limit=30)
        if ev.get("sender") == hs.layout.bot_user_id and ev["type"] == "m.room.message"
    ]
    assert any("has started" in n for n in notices), notices
    wait_for(lambda: occurrence(hs, series_id).posted == 2, timeout=30, what="both posters counted")

    # Down across the end: back up after it, the closing is caught up.
    hs.restart_hearth_at(lambda: set_clock(hs, start + timedelta(minutes=31)))
    wait_posting(hs, room, 50, "the room to close after the restart")
    occ = occurrence(hs, series_id)
    assert occ.status == "closed"
    assert (occ.joined, occ.posted) == (1, 2)  # the latecomer joined during it; both posted; no text kept
    with pytest.raises(MatrixError):
        member.say(room, "One more thing...")
    assert len(reminders(hs, member, private)) == 2  # nothing sent twice across two restarts
    # A one-off series is over: it ends, and the schedule no longer lists it.
    wait_for(
        lambda: Session(hs.engine).get(SessionSeries, series_id).ended_at is not None,
        timeout=90,
        what="the one-off series to end",
    )


def _welcomed(hs, prefix: str) -> tuple[User, str]:
    """A member who joined a room of a space (so the bot's welcome opened their private room)."""
    space = f"e2e-sessions-{secrets.token_hex(3)}"
    member = hs.member(prefix)
    member.join(hearth_room(hs, space=space, prefix=f"{space}-"))
    return member, join_private_room_with_the_bot(member)


def test_a_practice_level_is_the_members_own(hearth_stack):
    hs = hearth_stack
    member, private = _welcomed(hs, "practiser")
    ladders = ask(hs, member, private, "!level", "only you see these")
    assert "anxiety-panic" in ladders
    assert "distant-figures" in ladders
    ask(hs, member, private, "!level anxiety distant-figures", "you're at 'A few people far away' (2 of 3)")
    ask(hs, member, private, "!level anxiety down", "you're at 'Just you' (1 of 3)")
    other, other_private = _welcomed(hs, "other")
    assert "not chosen yet" in ask(hs, other, other_private, "!level", "Anxiety")
