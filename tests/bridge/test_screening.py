"""Screening without a homeserver: the gate's fallbacks and the after-delivery path on a real database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from bridge.clock import SystemClock
from bridge.gateway import TimelineEvent
from bridge.metrics import Metrics
from bridge.screening import Screening
from config.ids import RoomID
from spaces.models import ProvisionedRoom

ROOM = "!support:localhost"


def _catalogue(engine) -> None:
    with Session(engine) as s:
        s.add(ProvisionedRoom(alias="#t-discussion:localhost", room_id=ROOM, space_slug="t", room_slug="discussion",
                              capacity=10, profile="support", members_may_post=True, updated_at=datetime.now(UTC)))
        s.commit()


def _event(event_id: str) -> dict:
    return {"type": "m.room.message", "event_id": event_id, "sender": "@member:localhost", "room_id": ROOM,
            "content": {"msgtype": "m.text", "body": "hello everyone"}}


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
