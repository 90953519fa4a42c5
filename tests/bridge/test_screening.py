"""Screening without a homeserver: the gate's fallbacks and the after-delivery path on a real database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from bridge.clock import SystemClock
from bridge.gateway import TimelineEvent
from bridge.metrics import Metrics
from bridge.models import RoomMember
from bridge.screening import Screening
from config.ids import RoomID
from spaces.models import ProvisionedRoom

ROOM = "!support:localhost"


def _catalogue(engine) -> None:
    with Session(engine) as s:
        s.add(
            ProvisionedRoom(
                alias="#t-discussion:localhost",
                room_id=ROOM,
                space_slug="t",
                room_slug="discussion",
                capacity=10,
                profile="support",
                members_may_post=True,
                updated_at=datetime.now(UTC),
            )
        )
        s.commit()


def _event(event_id: str) -> dict:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "sender": "@member:localhost",
        "room_id": ROOM,
        "content": {"msgtype": "m.text", "body": "hello everyone"},
    }


def _broken_loader():
    raise RuntimeError("weights missing")


async def test_a_pipeline_that_cannot_load_sends_delivered_messages_to_human_review(engine):
    _catalogue(engine)
    screening = Screening(engine, SystemClock(), Metrics(), "@hearth:localhost", 250, _broken_loader)
    seen = []

    async def after(message, verdict, delivered_unscreened):
        seen.append((message.event_id, [d.kind for d in verdict.dispositions]))

    screening.after_delivery = after
    await screening.start()
    assert screening.health()["ok"] is False
    assert "weights missing" in screening.health()["error"]
    # The gate fails open (the module would too) ...
    assert await screening.gate_check({"event": _event("$a")}) is None
    # ... and the bot, seeing the delivered message, flags it for a person instead of letting it through.
    await screening.on_event(TimelineEvent(RoomID(ROOM), _event("$a")))
    assert seen == [("$a", ["flag"])]
    await screening.close()


async def test_rooms_that_are_not_hearths_are_not_screened(engine):
    screening = Screening(engine, SystemClock(), Metrics(), "@hearth:localhost", 250, _broken_loader)
    await screening.start()
    other = {**_event("$b"), "room_id": "!elsewhere:localhost"}
    assert await screening.gate_check({"event": other}) is None
    assert await screening._message(other) is None
    await screening.close()


async def test_join_times_are_read_once_and_forgotten_on_a_membership_change(engine):
    screening = Screening(engine, SystemClock(), Metrics(), "@hearth:localhost", 250, _broken_loader)
    member = "@member:localhost"
    assert await screening.joins.get(ROOM, member) is None  # unknown: not cached

    def join_event(ts_ms: int, membership: str = "join") -> TimelineEvent:
        return TimelineEvent(
            ROOM,
            {
                "type": "m.room.member",
                "state_key": member,
                "sender": member,
                "event_id": f"$m{ts_ms}",
                "origin_server_ts": ts_ms,
                "content": {"membership": membership},
            },
        )

    await screening.on_event(join_event(1_700_000_000_000))
    first = await screening.joins.get(ROOM, member)
    assert first == datetime.fromtimestamp(1_700_000_000, UTC)
    with Session(engine) as s:  # behind the cache's back: the cached time is served
        row = s.get(RoomMember, (ROOM, member))
        row.joined_at = datetime(2020, 1, 1, tzinfo=UTC)
        s.add(row)
        s.commit()
    assert await screening.joins.get(ROOM, member) == first
    await screening.on_event(join_event(1_700_000_100_000, "leave"))  # the bot records a change
    assert await screening.joins.get(ROOM, member) is None
    await screening.on_event(join_event(1_700_000_200_000))
    assert await screening.joins.get(ROOM, member) == datetime.fromtimestamp(1_700_000_200, UTC)
