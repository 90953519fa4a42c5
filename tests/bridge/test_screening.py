"""Screening without a homeserver: the gate's fallbacks and the after-delivery path on a real database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from bridge.clock import SystemClock
from bridge.gateway import TimelineEvent
from bridge.metrics import Metrics
from bridge.models import RoomMember
from bridge.screening import Screening, invite_checks
from config.ids import RoomID
from config.settings import Settings
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


async def test_a_remote_members_trust_period_starts_when_hearth_learns_of_the_join(engine):
    """Another server sets its events' timestamps: a join it dates a year back must not skip the
    trust period, and a remote member whose join is not recorded yet counts as new."""
    _catalogue(engine)
    screening = Screening(engine, SystemClock(), Metrics(), "@hearth:localhost", 250, _broken_loader)
    remote = "@visitor:127.0.0.2:8448"
    message = {**_event("$r1"), "sender": remote}
    unrecorded = await screening._message(message)
    assert unrecorded is not None
    assert unrecorded.sender_remote
    assert unrecorded.sender_joined_at == unrecorded.sent_at  # as new as can be
    before = datetime.now(UTC)
    await screening.on_event(
        TimelineEvent(
            ROOM,
            {
                "type": "m.room.member",
                "state_key": remote,
                "sender": remote,
                "event_id": "$join",
                "origin_server_ts": 1_600_000_000_000,  # what the remote server claims
                "content": {"membership": "join"},
            },
        )
    )
    joined = await screening.joins.get(ROOM, remote)
    assert joined is not None
    assert joined >= before
    local = await screening._message(_event("$l1"))
    assert local is not None
    assert not local.sender_remote


async def test_invites_from_other_servers_are_refused_whatever_the_member_policy():
    settings = Settings(environment="development", moderation={"allow_member_invites": True})
    may_invite, invite_event = invite_checks(settings, frozenset({"@clin:localhost"}))
    payload = {"inviter": "@stranger:127.0.0.2:8448", "invitee": "@member:localhost", "room_id": "!r:x"}
    status, body = await may_invite(payload)
    assert (status, body["org.hearth.reason"]) == (403, "invite_policy.remote")
    assert await may_invite({**payload, "inviter": "@member:localhost"}) is None  # the policy allows members
    assert await may_invite({**payload, "inviter": "@clin:localhost"}) is None

    def member_event(sender: str, membership: str = "invite") -> dict:
        return {
            "event": {
                "type": "m.room.member",
                "sender": sender,
                "state_key": "@friend:127.0.0.2:8448",
                "room_id": ROOM,
                "content": {"membership": membership},
            }
        }

    refused = await invite_event(member_event("@visitor:127.0.0.2:8448"))
    assert refused is not None
    assert refused[0] == 403
    assert await invite_event(member_event("@visitor:127.0.0.2:8448", "join")) is None
    assert await invite_event(member_event("@hearth:localhost")) is None
    assert await invite_event({"event": _event("$m")}) is None  # messages are the pipeline's
