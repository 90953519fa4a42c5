"""CapacityCheck: joins beyond a provisioned room's capacity are refused; everything else passes.

The member count comes from a fake of Synapse's admin API (the e2e test uses the real one); the
catalogue is a real database on both backends.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from bridge.capacity import MEMBERS_TTL_SECONDS, CapacityCheck
from spaces.models import ProvisionedRoom

BOT = "@hearth:localhost"
STAFF = "@moderator1:localhost"
ROOM = "!quiet:localhost"


class FakeAdmin:
    def __init__(self, members: list[str]) -> None:
        self.members = members
        self.calls = 0
        self.fail = False

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        self.calls += 1
        if self.fail:
            raise RuntimeError("homeserver unavailable")
        return {"members": list(self.members), "total": len(self.members)}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _check(engine, admin: FakeAdmin, clock: FakeClock | None = None) -> CapacityCheck:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        s.add(
            ProvisionedRoom(
                alias="#a-quiet:localhost",
                room_id=ROOM,
                space_slug="a",
                room_slug="quiet",
                capacity=2,
                profile="quiet",
                members_may_post=True,
                updated_at=datetime.now(UTC),
            )
        )
        s.commit()
    return CapacityCheck(engine, admin, bot=BOT, staff=[STAFF], monotonic=clock or FakeClock())


def join(user: str, room: str = ROOM) -> dict[str, Any]:
    return {"user": user, "room": room, "is_invited": False}


async def test_refuses_the_join_beyond_capacity_not_counting_the_bot(engine) -> None:  # type: ignore[no-untyped-def]
    check = _check(engine, FakeAdmin([BOT, "@a:localhost"]))
    assert await check(join("@b:localhost")) is None
    answer = await check(join("@c:localhost"))
    assert answer is not None
    status, body = answer
    assert status == 403
    assert body["errcode"] == "M_FORBIDDEN"
    assert body["org.hearth.reason"] == "capacity"
    assert body["org.hearth.capacity"] == 2


async def test_staff_bot_members_and_unknown_rooms_pass(engine) -> None:  # type: ignore[no-untyped-def]
    admin = FakeAdmin([BOT, "@a:localhost", "@b:localhost"])
    check = _check(engine, admin)
    assert await check(join(STAFF)) is None
    assert await check(join(BOT)) is None
    assert await check(join("@a:localhost")) is None  # already joined (e.g. a profile change)
    assert await check(join("@z:localhost", "!elsewhere:localhost")) is None
    assert await check(join("@z:localhost")) is not None


async def test_concurrent_joins_cannot_overshoot_and_counts_are_cached(engine) -> None:  # type: ignore[no-untyped-def]
    admin = FakeAdmin([BOT])
    clock = FakeClock()
    check = _check(engine, admin, clock)
    answers = await asyncio.gather(*(check(join(f"@u{i}:localhost")) for i in range(5)))
    assert sum(a is None for a in answers) == 2
    assert admin.calls == 1
    clock.t += MEMBERS_TTL_SECONDS + 0.1
    admin.members = [BOT]  # everyone left: the count is read again
    assert await check(join("@late:localhost")) is None
    assert admin.calls == 2


async def test_an_unreadable_count_allows_the_join(engine) -> None:  # type: ignore[no-untyped-def]
    admin = FakeAdmin([BOT, "@a:localhost", "@b:localhost"])
    admin.fail = True
    check = _check(engine, admin)
    assert await check(join("@c:localhost")) is None
