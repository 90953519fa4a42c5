"""The bot's private rooms: different members' rooms open concurrently, one member never gets two,
and no concurrent opening drops another's ``m.direct`` entry. A small in-memory gateway stands in
for the homeserver (the real one is exercised by tests/e2e/test_escalation.py)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from bridge.direct_rooms import DirectRooms
from config.ids import RoomID

BOT = "@hearth:localhost"


class MemoryGateway:
    """Account data and memberships in memory; every call yields to the event loop, as a network
    call would. ``create_private_room`` waits until ``overlap`` creations are in flight at once
    (or fails after a few seconds), so a test can require concurrency without measuring time."""

    def __init__(self, overlap: int = 1) -> None:
        self.account: dict[str, dict[str, Any]] = {}
        self.membership: dict[tuple[str, str], str] = {}
        self.created: list[str] = []
        self.direct_invites: list[tuple[str, str]] = []
        self.in_flight = 0
        self.overlap = overlap
        self._overlapped = asyncio.Event()

    @property
    def user_id(self) -> str:
        return BOT

    async def get_account_data(self, event_type: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return copy.deepcopy(self.account.get(event_type))

    async def set_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.account[event_type] = copy.deepcopy(content)

    async def get_state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        m = self.membership.get((room_id, state_key))
        return {"membership": m} if m else None

    async def create_private_room(
        self, *, is_direct: bool = False, invite_level: int | None = None
    ) -> RoomID:
        assert is_direct
        self.in_flight += 1
        if self.in_flight >= self.overlap:
            self._overlapped.set()
        try:
            await asyncio.wait_for(self._overlapped.wait(), 5)
        finally:
            self.in_flight -= 1
        room = f"!dm{len(self.created) + 1}:localhost"
        self.created.append(room)
        self.membership[(room, BOT)] = "join"
        return RoomID(room)

    async def invite(self, room_id: str, user_id: str) -> None:
        await asyncio.sleep(0)
        self.membership[(room_id, user_id)] = "invite"

    async def invite_direct(self, room_id: str, user_id: str) -> None:
        await asyncio.sleep(0)
        self.membership[(room_id, user_id)] = "invite"
        self.direct_invites.append((room_id, user_id))


def test_different_members_rooms_open_concurrently_and_all_are_remembered():
    async def run() -> tuple[MemoryGateway, DirectRooms, list[RoomID]]:
        gw = MemoryGateway(overlap=3)  # one lock for everyone would never have three in flight
        rooms = DirectRooms(gw)
        got = await asyncio.gather(*(rooms.room_for(f"@m{i}:localhost") for i in range(3)))
        return gw, rooms, got

    gw, rooms, got = asyncio.run(run())
    assert sorted(got) == sorted(gw.created)
    assert len(set(got)) == 3
    direct = gw.account["m.direct"]
    assert direct == {f"@m{i}:localhost": [got[i]] for i in range(3)}
    for i, room in enumerate(got):
        assert gw.membership[(room, f"@m{i}:localhost")] == "invite"
    assert rooms._members == {}  # nothing kept once no call is in flight


def test_one_member_gets_one_room_however_many_calls_race():
    async def run() -> tuple[MemoryGateway, list[RoomID]]:
        gw = MemoryGateway()
        rooms = DirectRooms(gw)
        got = await asyncio.gather(*(rooms.room_for("@m:localhost") for _ in range(4)))
        return gw, got

    gw, got = asyncio.run(run())
    assert len(gw.created) == 1
    assert set(got) == {gw.created[0]}
    assert gw.account["m.direct"] == {"@m:localhost": [gw.created[0]]}


def test_a_member_who_left_is_invited_back_and_a_ban_means_a_new_room():
    async def run() -> tuple[MemoryGateway, RoomID, RoomID, RoomID]:
        gw = MemoryGateway()
        rooms = DirectRooms(gw)
        first = await rooms.room_for("@m:localhost")
        gw.membership[(first, "@m:localhost")] = "leave"
        again = await rooms.room_for("@m:localhost")
        gw.membership[(first, "@m:localhost")] = "ban"
        other = await rooms.room_for("@m:localhost")
        return gw, first, again, other

    gw, first, again, other = asyncio.run(run())
    assert again == first
    assert gw.membership[(first, "@m:localhost")] == "ban"
    assert other != first
    assert gw.account["m.direct"]["@m:localhost"] == [other, first]  # newest first, old one kept


def test_a_first_crisis_takes_a_ready_room_and_the_pool_is_refilled_and_survives_a_restart():
    async def run() -> tuple[MemoryGateway, RoomID, RoomID, DirectRooms]:
        gw = MemoryGateway()
        rooms = DirectRooms(gw, pool_size=2)
        assert await rooms.fill_pool() == 2
        assert await rooms.fill_pool() == 0  # already full
        ready = list(gw.account[DirectRooms.POOL_EVENT]["rooms"])
        created_before = len(gw.created)
        got = await rooms.room_for("@m:localhost")
        assert len(gw.created) == created_before  # no room built while the person waited
        assert got == ready[0]
        assert gw.direct_invites == [(got, "@m:localhost")]
        assert await rooms.fill_pool() == 1  # refilled afterwards
        again = await rooms.room_for("@m:localhost")  # the same person keeps their room
        restarted = DirectRooms(gw, pool_size=2)  # a new process reads the pool it left
        other = await restarted.room_for("@n:localhost")
        return gw, got, again, other

    gw, got, again, other = asyncio.run(run())
    assert again == got
    assert other in gw.created
    assert other != got
    assert gw.account["m.direct"] == {"@m:localhost": [got], "@n:localhost": [other]}
    assert other not in gw.account[DirectRooms.POOL_EVENT]["rooms"]


def test_without_a_pool_a_room_is_built_as_before():
    async def run() -> tuple[MemoryGateway, RoomID]:
        gw = MemoryGateway()
        rooms = DirectRooms(gw, pool_size=0)
        assert await rooms.fill_pool() == 0
        return gw, await rooms.room_for("@m:localhost")

    gw, got = asyncio.run(run())
    assert gw.created == [got]
    assert gw.direct_invites == []
