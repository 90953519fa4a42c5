"""Another server's member joining: removed from a full room (once, never after a legitimate join),
welcomed otherwise; their agreement row written at the gate as their join arrives over federation.

Small fakes stand in for the homeserver (tests/federation/test_federation.py runs two real ones);
the welcome's database is real, on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bridge.capacity import FULL_ROOM_TEXT
from bridge.gateway import TimelineEvent
from bridge.models import MemberAgreement, RoomMember
from bridge.remote_joins import RemoteJoins, is_remote_join, over_capacity
from bridge.welcome import Welcome
from config.ids import RoomID, UserID
from spaces.models import ProvisionedRoom

BOT = "@hearth:hearth.example"
STAFF = "@moderator1:hearth.example"
LOCAL = "@ana:hearth.example"
REMOTE = "@visitor:other.example"
ROOM = "!quiet:hearth.example"
OTHER_ROOM = "!discussion:hearth.example"
SERVER = "hearth.example"


def join_event(
    user: str = REMOTE, event_id: str = "$join1", prev: str | None = None, room: str = ROOM
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "room_id": room,
        "type": "m.room.member",
        "sender": user,
        "state_key": user,
        "content": {"membership": "join"},
    }
    if prev is not None:
        event["unsigned"] = {"prev_content": {"membership": prev}}
    return event


# --- pure ----------------------------------------------------------------------------------------


def test_a_remote_join_is_a_join_by_a_user_of_another_server() -> None:
    assert is_remote_join(join_event(), SERVER)
    assert is_remote_join(join_event(prev="leave"), SERVER)
    assert is_remote_join(join_event(prev="invite"), SERVER)
    assert not is_remote_join(join_event(LOCAL), SERVER)
    assert not is_remote_join(join_event(prev="join"), SERVER)  # a new display name, not a join
    leave = join_event()
    leave["content"] = {"membership": "leave"}
    assert not is_remote_join(leave, SERVER)
    someone_else = join_event()
    someone_else["state_key"] = "@other:other.example"
    assert not is_remote_join(someone_else, SERVER)
    assert not is_remote_join({**join_event(), "type": "m.room.message"}, SERVER)


def test_over_capacity_counts_who_was_there_before_the_joiner_but_not_the_bot() -> None:
    two = {BOT, "@a:x", "@b:x"}
    assert not over_capacity(two | {REMOTE}, REMOTE, bot=BOT, capacity=3)
    assert over_capacity(two | {REMOTE}, REMOTE, bot=BOT, capacity=2)
    assert over_capacity(two | {STAFF, REMOTE}, REMOTE, bot=BOT, capacity=3)  # staff take places too
    assert not over_capacity({BOT, REMOTE}, REMOTE, bot=BOT, capacity=2)


# --- the handler, with fakes ---------------------------------------------------------------------


class FakeRooms:
    """The room's members at each join event, and each user's current membership event."""

    user_id = UserID(BOT)

    def __init__(self) -> None:
        self.at: dict[str, set[UserID]] = {}
        self.current: dict[str, dict[str, Any]] = {}
        self.kicks: list[tuple[str, str, str | None]] = []

    async def members_at(self, room_id: str, event_id: str) -> set[UserID]:
        return self.at[event_id]

    async def member_event(self, room_id: str, user_id: str) -> dict[str, Any] | None:
        return self.current.get(user_id)

    async def kick(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        self.kicks.append((room_id, user_id, reason))
        self.current[user_id] = {"event_id": f"$kick{len(self.kicks)}", "content": {"membership": "leave"}}


class FakeCapacity:
    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.seen: list[tuple[str, bool]] = []

    async def capacity_of(self, room_id: str) -> int | None:
        return self.capacity

    def saw(self, room_id: str, user: str, *, joined: bool) -> None:
        self.seen.append((user, joined))


class FakeWelcome:
    def __init__(self) -> None:
        self.welcomed: list[tuple[str, str]] = []

    async def remote_join(self, user: str, room: str) -> None:
        self.welcomed.append((user, room))


def handler(rooms: FakeRooms, capacity: int | None = 2) -> tuple[RemoteJoins, FakeWelcome]:
    welcome = FakeWelcome()
    joins = RemoteJoins(rooms, FakeCapacity(capacity), welcome, staff=[STAFF])  # type: ignore[arg-type]
    return joins, welcome


def joined(rooms: FakeRooms, event: dict[str, Any], members: set[str]) -> TimelineEvent:
    rooms.at[event["event_id"]] = {UserID(m) for m in members}
    rooms.current[event["sender"]] = event
    return TimelineEvent(RoomID(event["room_id"]), event)


async def test_a_remote_member_joining_a_full_room_is_removed_once_with_the_kind_words() -> None:
    rooms = FakeRooms()
    joins, welcome = handler(rooms, capacity=2)
    ev = joined(rooms, join_event(), {BOT, "@a:x", "@b:x", REMOTE})
    await joins.handle_event(ev)
    assert rooms.kicks == [(ROOM, REMOTE, FULL_ROOM_TEXT)]
    assert "another room of the space" in FULL_ROOM_TEXT
    assert welcome.welcomed == []  # welcomed when they join a room (or the space) with room
    await joins.handle_event(ev)  # a restart replays the join: they are gone already
    assert len(rooms.kicks) == 1


async def test_a_legitimate_join_is_never_removed_even_if_replayed_after_the_room_filled() -> None:
    rooms = FakeRooms()
    joins, welcome = handler(rooms, capacity=2)
    ev = joined(rooms, join_event(), {BOT, "@a:x", REMOTE})  # the second place was free
    await joins.handle_event(ev)
    assert rooms.kicks == []
    assert welcome.welcomed == [(REMOTE, ROOM)]
    # Another remote member overfills the room; replaying the first join decides as before.
    late = joined(
        rooms, join_event("@late:other.example", "$join2"), {BOT, "@a:x", REMOTE, "@late:other.example"}
    )
    await joins.handle_event(ev)
    await joins.handle_event(late)
    assert rooms.kicks == [(ROOM, "@late:other.example", FULL_ROOM_TEXT)]


async def test_an_old_full_join_replayed_after_a_later_legitimate_one_removes_nobody() -> None:
    rooms = FakeRooms()
    joins, _ = handler(rooms, capacity=2)
    first = join_event(event_id="$first")
    rooms.at["$first"] = {UserID(u) for u in (BOT, "@a:x", "@b:x", REMOTE)}
    # Since then: removed, and joined again when there was room (their current membership).
    rooms.current[REMOTE] = join_event(event_id="$again", prev="leave")
    await joins.handle_event(TimelineEvent(RoomID(ROOM), first))
    assert rooms.kicks == []


@pytest.mark.parametrize("user", [STAFF, BOT, LOCAL])
async def test_staff_the_bot_and_local_members_are_never_removed_here(user: str) -> None:
    rooms = FakeRooms()
    joins, welcome = handler(rooms, capacity=2)
    await joins.handle_event(joined(rooms, join_event(user), {BOT, "@a:x", "@b:x", "@c:x", user}))
    assert rooms.kicks == []
    assert welcome.welcomed == []  # local members' welcome is ``Welcome.handle_event``'s


async def test_a_room_hearth_did_not_provision_is_not_its_business() -> None:
    rooms = FakeRooms()
    joins, welcome = handler(rooms, capacity=None)
    await joins.handle_event(joined(rooms, join_event(), {BOT, "@a:x", "@b:x", "@c:x", REMOTE}))
    assert rooms.kicks == []
    assert welcome.welcomed == [(REMOTE, ROOM)]


# --- the welcome's agreement row for remote members ----------------------------------------------


class FakeGateway:
    user_id = UserID(BOT)

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, room: str, content: dict[str, Any], txn_id: str | None = None) -> str:
        self.sent.append((room, content))
        return f"$sent{len(self.sent)}"


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def welcome_on(engine: Engine, gateway: FakeGateway) -> Welcome:
    with Session(engine) as s:
        for room, slug in ((ROOM, "quiet"), (OTHER_ROOM, "discussion")):
            s.add(
                ProvisionedRoom(
                    alias=f"#t-{slug}:{SERVER}",
                    room_id=room,
                    space_slug="trauma-ptsd",
                    room_slug=slug,
                    capacity=10,
                    profile=slug,
                    members_may_post=True,
                    updated_at=datetime.now(UTC),
                )
            )
        s.commit()

    async def dm_room(user: str) -> str:
        return "!dm:hearth.example"

    async def resources_for(user: str, space: str | None) -> dict[str, Any]:
        return {"msgtype": "m.text", "body": "crisis lines"}

    return Welcome(
        engine,
        gateway,  # type: ignore[arg-type]
        FixedClock(),
        staff=[STAFF],
        dm_room=dm_room,
        resources_for=resources_for,
        hold=True,
    )


def agreement(engine: Engine, user: str) -> MemberAgreement | None:
    with Session(engine) as s:
        return s.get(MemberAgreement, (user, "trauma-ptsd"))


async def test_a_remote_join_arriving_over_federation_is_noted_at_the_gate_and_then_welcomed(
    engine: Engine,
) -> None:
    gateway = FakeGateway()
    welcome = welcome_on(engine, gateway)
    try:
        assert (
            await welcome.federated_join_check({"event": join_event(LOCAL)}) is None
        )  # local: user_may_join_room's
        assert agreement(engine, LOCAL) is None
        assert await welcome.federated_join_check({"event": join_event()}) is None  # never refuses
        row = agreement(engine, REMOTE)
        assert row is not None
        assert row.agreed_at is None
        assert welcome.pending(REMOTE, "trauma-ptsd")  # held until they agree, as local members are
        await welcome.remote_join(REMOTE, ROOM)
        await welcome.remote_join(REMOTE, ROOM)  # a replay: one welcome
        welcomes = [c for _, c in gateway.sent if "org.hearth.welcome" in c]
        assert len(welcomes) == 1
        assert welcomes[0]["org.hearth.welcome"] == {"space": "trauma-ptsd"}
        await welcome.agree(REMOTE)
        assert not welcome.pending(REMOTE, "trauma-ptsd")
    finally:
        welcome.close()


async def test_the_bot_notes_a_remote_join_the_gate_missed_not_mistaking_it_for_an_old_membership(
    engine: Engine,
) -> None:
    gateway = FakeGateway()
    welcome = welcome_on(engine, gateway)
    old_timer = "@oldtimer:other.example"
    try:
        with Session(engine) as s:
            # The bot already recorded this join (screening runs first) ...
            s.add(RoomMember(room_id=ROOM, user_id=REMOTE, joined_at=FixedClock().now()))
            # ... and this member was in another room of the space before welcomes existed.
            s.add(RoomMember(room_id=OTHER_ROOM, user_id=old_timer, joined_at=FixedClock().now()))
            s.commit()
        await welcome.remote_join(REMOTE, ROOM)
        row = agreement(engine, REMOTE)
        assert row is not None
        assert row.agreed_at is None
        assert row.welcome_event_id is not None
        await welcome.remote_join(old_timer, ROOM)
        row = agreement(engine, old_timer)
        assert row is not None
        assert row.agreed_at is not None  # recorded as agreed, never held
        assert not welcome.pending(old_timer, "trauma-ptsd")
    finally:
        welcome.close()
