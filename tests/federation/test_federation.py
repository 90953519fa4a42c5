"""Federation: a member of another homeserver in a Hearth space, over real federation between two
Synapses on loopback (see conftest.py). Hearth's gate runs on Hearth's server only; the other server
is a plain Synapse, as most of the Matrix network is.

What Synapse does with a federated event the gate refuses (``check_event_for_spam``): it cannot
refuse it (the remote server has already accepted and sent it), so it *soft-fails* it and prunes its
content: nobody on Hearth's server ever sees it, and it is never built upon. The sender's own server
still shows it to them, so the bot also redacts it in the room: the redaction federates, and the
copy on the sender's server loses its text too.
"""

from __future__ import annotations

import time

import httpx
import pytest
from sqlmodel import Session, select

from bridge import stack
from bridge.capacity import CATALOGUE_TTL_SECONDS
from bridge.models import MemberAgreement, SeenEvent
from moderation.casework.tables import Sanction
from moderation.escalation import Escalation
from moderation.models import ModerationDecision
from tests.e2e.conftest import bot_says, resolve_open_escalations, wait_escalated
from tests.e2e.escalation_staff import join_private_room_with_the_bot, staff_room
from tests.e2e.matrix import MatrixError, User, q, wait_for
from tests.e2e.test_moderators import hs_healthy, moderator, until_done
from tests.e2e.test_provisioning import apply, copy_themes, edit_theme
from tests.federation.conftest import (
    PATIENCE,
    THEME,
    Federation,
    _joined,
    membership,
    own_membership,
)

pytestmark = pytest.mark.e2e

ABUSE = "You are a disgusting waste of space and everyone here hates you."
CRISIS = "I have the pills ready and I'm going to take them all tonight."


def decision(fed: Federation, event_id: str) -> ModerationDecision | None:
    with Session(fed.hearth.engine) as s:
        return s.get(ModerationDecision, event_id)


def timeline(user: User, room_id: str) -> dict[str, dict]:
    """The room's recent events as ``user``'s own homeserver serves them, by event ID."""
    return {ev["event_id"]: ev for ev in user.messages(room_id, limit=100)}


def test_a_remote_user_joins_the_space_and_its_restricted_rooms_over_federation(federation):
    fed = federation
    started = time.monotonic()
    visitor = fed.visitor("check-in", "discussion")
    took = time.monotonic() - started
    local_view = fed.hearth.bot()
    for slug in ("check-in", "discussion"):
        assert membership(local_view, fed.rooms[slug], visitor.user_id) == "join"
        assert membership(visitor, fed.rooms[slug], visitor.user_id) == "join"  # as their own server sees it
    assert took < 20, f"joining a space and two rooms over federation took {took:.1f}s"
    # The rooms are restricted to the space's members, across servers too.
    outsider = fed.remote.member("outsider")
    with pytest.raises(MatrixError) as refused:
        outsider.join(fed.room_alias("discussion"))
    assert refused.value.status == 403


def local_member(fed: Federation, *rooms: str) -> User:
    """A member of Hearth's own server in the space and ``rooms``."""
    member = fed.hearth.member("local")
    member.join(fed.space_id)
    for slug in rooms:
        member.join(fed.rooms[slug])
    return member


def test_a_remote_members_abuse_never_reaches_hearths_server_and_is_redacted_on_their_own(federation):
    fed = federation
    visitor = fed.visitor("discussion")
    reader = local_member(fed, "discussion")
    room = fed.rooms["discussion"]
    # The remote server accepts the message (its own users see it at first): a gate on Hearth's
    # server cannot refuse what another server already took.
    abuse_id = visitor.say(room, ABUSE)
    ordinary_id = visitor.say(room, "Thanks for having me, I'm a bit nervous about posting here.")
    # Hearth's gate screened it when it arrived over federation and refused it ...
    row = wait_for(
        lambda: decision(fed, abuse_id), timeout=20, what="the gate's decision on the remote abuse"
    )
    assert row.source == "gate"
    assert "block" in [d["kind"] for d in row.dispositions]
    # ... so Hearth's server soft-failed it: its members never see it, while the message after it
    # arrives (the link works; only the abuse was dropped).
    wait_for(lambda: ordinary_id in timeline(reader, room), timeout=20, what="the ordinary message on Hearth")
    assert abuse_id not in timeline(reader, room)
    with pytest.raises(MatrixError):
        reader.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/event/{q(abuse_id)}")

    # On the sender's own server, the bot's redaction arrives over federation: the text is gone there too.
    def redacted_on_the_remote() -> bool:
        ev = timeline(visitor, room).get(abuse_id)
        return ev is not None and "body" not in ev["content"] and "redacted_because" in ev.get("unsigned", {})

    wait_for(redacted_on_the_remote, timeout=20, what="the abuse redacted on the sender's server")
    assert timeline(visitor, room)[ordinary_id]["content"]["body"].startswith("Thanks for having me")


def test_a_remote_members_crisis_raises_the_same_alert_as_a_local_members(federation):
    fed = federation
    hs = fed.hearth
    room = fed.rooms["check-in"]
    local = local_member(fed, "check-in")
    visitor = fed.visitor("check-in")
    local_id = local.say(room, CRISIS)
    remote_id = visitor.say(room, CRISIS)
    local_esc = wait_escalated(hs, local_id, "the local member's escalation")
    remote_esc = wait_escalated(hs, remote_id, "the remote member's escalation")
    assert remote_esc.sender == visitor.user_id
    assert (
        (remote_esc.severity, remote_esc.category)
        == (local_esc.severity, local_esc.category)
        == (
            "imminent",
            local_esc.category,
        )
    )

    def alert(event_id: str) -> dict | None:
        with Session(hs.engine) as s:
            esc = s.exec(select(Escalation).where(Escalation.first_event_id == event_id)).one()
        if esc.alert_event_id is None:
            return None
        return hs.bot().call(
            "GET", f"/_matrix/client/v3/rooms/{q(staff_room(hs))}/event/{q(esc.alert_event_id)}"
        )

    local_alert = wait_for(lambda: alert(local_id), timeout=30, what="the local member's alert")["content"]
    remote_alert = wait_for(lambda: alert(remote_id), timeout=30, what="the remote member's alert")["content"]
    assert remote_alert["msgtype"] == local_alert["msgtype"] == "m.text"  # rings the clinician's phone
    assert remote_alert["m.mentions"] == local_alert["m.mentions"] == {"user_ids": [fed.clinician]}
    summary = remote_alert["org.hearth.escalation"]
    assert summary["sender"] == visitor.user_id
    assert summary["event_id"] == remote_id
    for key in ("severity", "category", "status", "room_id"):
        assert summary[key] == local_alert["org.hearth.escalation"][key]
    assert visitor.user_id in remote_alert["body"]
    # The person is offered help privately, across servers: the bot's private room reaches their server.
    dm = join_private_room_with_the_bot(visitor)

    def crisis_resources() -> list[dict] | None:
        # The welcome brings the crisis lines too (one resources message): the crisis brings a second.
        found = [e for e in visitor.messages(dm) if "org.hearth.resources" in (e.get("content") or {})]
        return found if len(found) >= 2 else None

    resources = wait_for(crisis_resources, timeout=20, what="the crisis resources on the remote server")
    assert resources[0]["sender"] == hs.layout.bot_user_id
    assert "org.hearth.resources" in resources[0]["content"]
    resolve_open_escalations(hs)


def test_a_moderators_ban_reaches_the_remote_server(federation):
    fed = federation
    visitor = fed.visitor("discussion", "quiet")
    mod = moderator(fed.hearth, fed.moderator)
    answer = until_done(
        fed.hearth, mod, f"!ban {visitor.user_id} 1h federation test --space {fed.theme.slug}"
    )
    assert answer.startswith("Done"), answer
    for slug in ("discussion", "quiet"):
        room = fed.rooms[slug]
        wait_for(
            lambda room=room: membership(fed.hearth.bot(), room, visitor.user_id) == "ban",
            timeout=30,
            what=f"the ban in {slug} on Hearth's server",
        )
        # As the member's own server sees it: banned, so their server refuses their messages itself.
        # (Through the member's own /sync: a banned member may no longer read the room's state, and
        # once no user of theirs is left in a room their server leaves it.)
        wait_for(
            lambda room=room: own_membership(visitor, room) == "ban",
            timeout=30,
            what=f"the ban in {slug} on the remote server",
        )
        with pytest.raises(MatrixError) as refused:
            visitor.say(room, "hello?")
        assert refused.value.status == 403
    with pytest.raises(MatrixError):
        visitor.join(fed.room_alias("discussion"))


def test_a_remote_outage_and_return_lose_nothing(federation):
    fed = federation
    hs = fed.hearth
    room = fed.rooms["check-in"]
    visitor = fed.visitor("check-in")
    local = local_member(fed, "check-in")

    # 1. The remote server is down while Hearth's side talks: everything reaches it once it is back.
    fed.remote.stop()
    sent = [local.say(room, f"checking in, round {i}: a slow morning but okay") for i in range(5)]
    sent.append(hs.bot().say(room, "A reminder: the group session starts at six."))
    fed.remote.start()
    local.say(room, "is anyone else around today?")  # ordinary traffic wakes the link at once
    wait_for(
        lambda: set(sent) <= set(timeline(visitor, room)), timeout=60, what="Hearth's messages on the remote"
    )

    # 2. Hearth's server is down while the remote member posts (their server accepts and queues): after
    # it returns, every message arrives and is screened; the abuse never shows, the crisis escalates.
    stack.stop_synapse(hs.layout)
    try:
        queued = [
            visitor.say(room, "Good morning everyone, the sun is out here."),
            visitor.say(room, ABUSE),
            visitor.say(room, CRISIS),
        ]
    finally:
        stack.start_synapse(hs.layout, timeout=90 * PATIENCE)
    wait_for(lambda: hs_healthy(hs), timeout=60, what="Hearth healthy again")
    local.say(room, "good to see everyone here today")
    wait_for(lambda: all(decision(fed, e) for e in queued), timeout=90, what="every queued message screened")
    kinds = [[d["kind"] for d in decision(fed, e).dispositions] for e in queued]
    assert kinds[0] == ["allow"]
    assert "block" in kinds[1]
    assert "escalate" in kinds[2]
    wait_escalated(hs, queued[2], "the queued crisis escalated")
    wait_for(
        lambda: queued[0] in timeline(local, room), timeout=30, what="the queued ordinary message on Hearth"
    )
    assert queued[1] not in timeline(local, room)
    resolve_open_escalations(hs)


# --- invites, knocks and media from other servers (README "Federation") ---------------------------


def test_a_remote_user_cannot_invite_hearths_members(federation):
    fed = federation
    stranger = fed.remote.member("stranger")
    local = local_member(fed)
    their_room = stranger.create_room(name="come chat", preset="private_chat")
    with pytest.raises(MatrixError) as refused:
        stranger.invite(their_room, local.user_id)  # Hearth's server answers the federated invite
    assert refused.value.status == 403
    invites = local.call("GET", "/_matrix/client/v3/sync?timeout=0")["rooms"].get("invite", {})
    assert their_room not in invites


def test_a_remote_member_cannot_invite_anyone_into_their_private_room_with_the_bot(federation):
    fed = federation
    visitor = fed.visitor("discussion")
    visitor.say(fed.rooms["discussion"], ABUSE)  # refused on Hearth's server: the bot explains privately
    private = join_private_room_with_the_bot(visitor)
    friend = fed.remote.member("friend")
    # Their own server refuses it: the room's power levels (which every server enforces) reserve
    # invites to the bot. Hearth's gate alone could only soft-fail it on Hearth's server.
    with pytest.raises(MatrixError) as refused:
        visitor.invite(private, friend.user_id)
    assert refused.value.status == 403
    assert membership(fed.hearth.bot(), private, friend.user_id) is None
    with pytest.raises(MatrixError):
        friend.join(private)


def test_a_remote_member_may_knock_and_staff_let_them_in(federation):
    fed = federation
    hs = fed.hearth
    visitor = fed.visitor()
    room = fed.rooms["group-session"]
    with pytest.raises(MatrixError):
        visitor.join(fed.room_alias("group-session"))  # knock-to-join: no way in without asking
    visitor.call(
        "POST", f"/_matrix/client/v3/knock/{q(fed.room_alias('group-session'))}", {"reason": "hello"}
    )
    wait_for(
        lambda: membership(hs.bot(), room, visitor.user_id) == "knock", timeout=20, what="the knock on Hearth"
    )
    hs.bot().invite(room, visitor.user_id)  # staff (and the bot) may invite anyone, remote users too
    wait_for(lambda: _invited(visitor, room), timeout=20, what="the invite on the remote server")
    visitor.join(room)
    wait_for(
        lambda: membership(hs.bot(), room, visitor.user_id) == "join", timeout=20, what="the join on Hearth"
    )


def _invited(user: User, room: str) -> bool:
    return room in user.call("GET", "/_matrix/client/v3/sync?timeout=0")["rooms"].get("invite", {})


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def image(user: User, hs_url: str) -> dict:
    """An ``m.image`` of a real upload to ``user``'s own media repository."""
    r = httpx.post(
        f"{hs_url}/_matrix/media/v3/upload?filename=dot.png",
        content=PNG,
        headers={"Authorization": f"Bearer {user.token}", "Content-Type": "image/png"},
        timeout=30,
    )
    r.raise_for_status()
    return {
        "msgtype": "m.image",
        "body": "dot.png",
        "url": r.json()["content_uri"],
        "info": {"mimetype": "image/png"},
    }


def test_media_from_a_remote_member_is_refused_even_after_the_trust_period(federation):
    fed = federation
    hs = fed.hearth
    room = fed.rooms["discussion"]
    visitor = fed.visitor("discussion")
    local = local_member(fed, "discussion")
    offset = hs.layout.root / "clock_offset"
    offset.write_text(str(3 * 3600))  # both joined three hours ago as far as Hearth can tell
    try:
        time.sleep(1.5)  # Hearth re-reads the offset file when it changes
        local_image = local.send(room, image(local, hs.layout.hs_url))  # past the trust period: delivered
        assert [d["kind"] for d in decision(fed, local_image).dispositions] == ["allow"]
        remote_image = visitor.send(room, image(visitor, fed.remote.layout.hs_url))
        row = wait_for(
            lambda: decision(fed, remote_image), timeout=20, what="the gate's decision on the remote image"
        )
        blocks = [d["reason"] for d in row.dispositions if d["kind"] == "block"]
        assert [r.split(":")[0] for r in blocks] == ["behaviour.remote_media"]
        wait_for(
            lambda: _redacted(visitor, room, remote_image),
            timeout=20,
            what="the image withdrawn on the remote",
        )
        words = visitor.say(room, "sorry, here it is in words: a small dot")
        wait_for(lambda: words in timeline(local, room), timeout=20, what="the visitor's words on Hearth")
        assert remote_image not in timeline(local, room)
    finally:
        offset.write_text("0")


def _redacted(user: User, room: str, event_id: str) -> bool:
    ev = timeline(user, room).get(event_id)
    return ev is not None and "url" not in ev["content"] and "redacted_because" in ev.get("unsigned", {})


# --- remote joins: capacity and the welcome (README "Federation") ---------------------------------


def participants(fed: Federation, room: str) -> set[str]:
    """Who is joined to ``room`` on Hearth's server, but the bot."""
    members = fed.hearth.admin.call("GET", f"/_synapse/admin/v1/rooms/{q(room)}/members")["members"]
    return set(members) - {fed.hearth.layout.bot_user_id}


def member_event(fed: Federation, room: str, user_id: str) -> dict:
    """``user_id``'s current membership event in ``room`` on Hearth's server, whole."""
    path = f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.member/{q(user_id)}?format=event"
    return fed.hearth.bot().call("GET", path)


def handled_by_the_bot(fed: Federation, room: str, user_id: str) -> None:
    """Wait until the bot has handled ``user_id``'s current membership event in ``room``."""
    event_id = member_event(fed, room, user_id)["event_id"]

    def seen() -> bool:
        with Session(fed.hearth.engine) as s:
            return s.get(SeenEvent, event_id) is not None

    wait_for(seen, timeout=30, what=f"the bot handling {user_id}'s membership {event_id}")


def test_a_remote_member_joining_a_full_room_is_removed_kindly_and_may_come_back(federation, tmp_path):
    fed = federation
    hs = fed.hearth
    room = fed.rooms["resources"]  # no other test joins it
    capacity = max(2, len(participants(fed, room)) + 2)
    themes = copy_themes(tmp_path)
    edit_theme(themes, THEME, r"capacity = \d+", f"capacity = {capacity}", after='slug = "resources"')
    edit_theme(themes, THEME, r"seats = \d+", "seats = 2", after='slug = "resources"')  # seats <= capacity
    try:
        apply(hs, themes, only=THEME)
        time.sleep(CATALOGUE_TTL_SECONDS + 0.3)  # Hearth re-reads the catalogue
        locals_ = [local_member(fed, "resources")]  # at least one: the capacity leaves room for it
        while len(participants(fed, room)) < capacity - 1:
            locals_.append(local_member(fed, "resources"))
        # The last place goes to a remote member: their join stands.
        last_place = fed.visitor("resources", prefix="lastplace")
        handled_by_the_bot(fed, room, last_place.user_id)
        assert membership(hs.bot(), room, last_place.user_id) == "join"
        assert len(participants(fed, room)) == capacity
        # One more: Hearth's gate is not asked about another server's join, so their server lets
        # them in; the bot removes them right after, with the gate's kind words.
        latecomer = fed.visitor(prefix="latecomer")
        wait_for(
            lambda: _joined(latecomer, fed.room_alias("resources")), timeout=20, what="the latecomer's join"
        )
        wait_for(
            lambda: membership(hs.bot(), room, latecomer.user_id) == "leave",
            timeout=30,
            what="the latecomer removed from the full room",
        )
        removal = member_event(fed, room, latecomer.user_id)
        assert removal["sender"] == hs.layout.bot_user_id
        reason = removal["content"]["reason"]
        assert "This room is full right now" in reason
        assert "another room of the space" in reason
        assert len(participants(fed, room)) <= capacity
        assert membership(hs.bot(), room, last_place.user_id) == "join"
        # As their own server sees it: removed (the kick federates), and no sanction against them.
        wait_for(
            lambda: own_membership(latecomer, room) == "leave", timeout=30, what="the removal on the remote"
        )
        with Session(hs.engine) as s:
            assert not s.exec(select(Sanction).where(Sanction.user_id == latecomer.user_id)).all()
        # When a place frees up they may join again, and stay.
        locals_[0].call("POST", f"/_matrix/client/v3/rooms/{q(room)}/leave", {})
        wait_for(
            lambda: len(participants(fed, room)) < capacity,
            timeout=30,
            what="a place freed on Hearth's server",
        )
        wait_for(lambda: _joined(latecomer, fed.room_alias("resources")), timeout=20, what="joining again")
        wait_for(
            lambda: membership(hs.bot(), room, latecomer.user_id) == "join", timeout=30, what="the join again"
        )
        handled_by_the_bot(fed, room, latecomer.user_id)
        assert membership(hs.bot(), room, latecomer.user_id) == "join"
        assert len(participants(fed, room)) <= capacity
    finally:
        apply(hs, only=THEME)


def test_a_remote_member_gets_the_welcome_and_agrees_as_a_local_member_does(federation):
    fed = federation
    hs = fed.hearth
    visitor = fed.visitor("discussion", prefix="newcomer")  # the space and one of its rooms
    private = join_private_room_with_the_bot(visitor)
    welcome = bot_says(
        hs, visitor, private, lambda ev: "org.hearth.welcome" in ev["content"], "the welcome on the remote"
    )
    content = welcome["content"]
    assert content["org.hearth.welcome"] == {"space": THEME}
    assert "isn't therapy or a crisis service" in content["body"]
    assert "!agree" in content["body"]
    assert "<p>" in content["formatted_body"]
    bodies = [str((ev.get("content") or {}).get("body", "")) for ev in visitor.messages(private, limit=30)]
    assert any("mergency" in b for b in bodies), bodies  # the crisis lines follow the welcome
    welcomes = [
        e for e in visitor.messages(private, limit=50) if "org.hearth.welcome" in (e.get("content") or {})
    ]
    assert len(welcomes) == 1  # the space and a room of it: one welcome
    with Session(hs.engine) as s:
        row = s.get(MemberAgreement, (visitor.user_id, THEME))
        assert row is not None
        assert row.welcome_event_id == welcome["event_id"]
        assert row.agreed_at is None
    visitor.say(private, "!agree")
    bot_says(
        hs, visitor, private, lambda ev: "You can post" in str(ev["content"].get("body", "")), "the thanks"
    )
    with Session(hs.engine) as s:
        row = s.get(MemberAgreement, (visitor.user_id, THEME))
        assert row is not None
        assert row.agreed_at is not None


def _withdrawn(user: User, room: str, event_id: str) -> bool:
    ev = timeline(user, room).get(event_id)
    return ev is not None and "body" not in ev["content"] and "redacted_because" in ev.get("unsigned", {})


def test_with_holding_a_remote_members_first_message_waits_for_agree_but_a_crisis_never_does(federation):
    fed = federation
    hs = fed.hearth
    stack.stop_hearth(hs.layout)
    stack.start_hearth(hs.layout, env={"HEARTH_JOIN__HOLD_UNTIL_AGREED": "true"}, timeout=300 * PATIENCE)
    try:
        room = fed.rooms["check-in"]
        reader = local_member(fed, "check-in")
        visitor = fed.visitor("check-in", prefix="held")
        private = join_private_room_with_the_bot(visitor)
        bot_says(hs, visitor, private, lambda ev: "org.hearth.welcome" in ev["content"], "the welcome")
        # Their server takes the message; Hearth's gate holds it: never delivered on Hearth's server,
        # withdrawn on theirs, and they are told privately why (they never see the gate's refusal).
        first = visitor.say(room, "Hi everyone, I'm new here and a bit nervous")
        wait_for(lambda: _withdrawn(visitor, room, first), timeout=30, what="the held message withdrawn")
        notice = bot_says(
            hs,
            visitor,
            private,
            lambda ev: "wasn't delivered" in str(ev["content"].get("body", "")),
            "the private notice",
        )
        assert "!agree" in notice["content"]["body"]
        crisis = visitor.say(room, CRISIS)  # never held back
        wait_escalated(hs, crisis, "the held remote member's crisis escalated")
        assert first not in timeline(reader, room)
        visitor.say(private, "!agree")
        bot_says(
            hs, visitor, private, lambda ev: "You can post" in str(ev["content"].get("body", "")), "thanks"
        )
        again = visitor.say(room, "Hi everyone, I'm new here and a bit nervous")
        wait_for(
            lambda: again in timeline(reader, room), timeout=30, what="the message after !agree on Hearth"
        )
    finally:
        stack.stop_hearth(hs.layout)
        stack.start_hearth(hs.layout, timeout=300 * PATIENCE)
        resolve_open_escalations(hs)
