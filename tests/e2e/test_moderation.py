"""The moderation gate end to end: messages sent through the real Synapse, screened by the real
Hearth service before delivery, and acted on by the bot after delivery."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session, select

from bridge import stack
from bridge.escalation.render import category_words
from moderation.escalation import Escalation
from moderation.models import FlaggedMessage, ModerationDecision
from spaces.models import ProvisionedRoom, ProvisionedSpace
from tests.e2e.conftest import hearth_room, remove_catalogue_rooms, resolve_open_escalations
from tests.e2e.escalation_staff import CLINICIAN, join_private_room_with_the_bot, staff_room, staff_user
from tests.e2e.matrix import MatrixError, q, wait_for
from tests.moderation.factories import DISTRESSED_BURST

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _leave_the_stack_as_found(hearth_stack):
    """Later modules share this stack: drop the catalogue rows made here and close the escalations."""
    yield
    resolve_open_escalations(hearth_stack)
    remove_catalogue_rooms(hearth_stack)


def decision(hs, event_id: str) -> ModerationDecision | None:
    with Session(hs.engine) as s:
        return s.get(ModerationDecision, event_id)


@pytest.fixture
def room_and_member(hearth_stack):
    room = hearth_room(hearth_stack)
    member = hearth_stack.member()
    member.join(room)
    return room, member


def test_abuse_aimed_at_others_is_refused_before_delivery(hearth_stack, room_and_member):
    room, member = room_and_member
    with pytest.raises(MatrixError) as e:
        member.say(room, "You are a disgusting waste of space and everyone here hates you.")
    assert e.value.status == 403
    assert e.value.body["errcode"] == "M_FORBIDDEN"
    assert "wasn't sent" in e.value.body["error"]
    assert e.value.body["org.hearth.reason"].startswith(("rules.", "toxicity."))
    bodies = [ev["content"].get("body", "") for ev in member.messages(room) if ev["type"] == "m.room.message"]
    assert not any("waste of space" in b for b in bodies)


def test_an_attack_on_people_for_who_they_are_is_refused_but_reporting_one_is_not(
    hearth_stack, room_and_member
):
    room, member = room_and_member
    with pytest.raises(MatrixError) as e:
        member.say(room, "Honestly gay men are vermin and should stay away from this group.")
    assert e.value.status == 403
    assert e.value.body["org.hearth.reason"].startswith("rules.identity_hate")
    assert "attacks people for who they are" in e.value.body["error"]
    event_id = member.say(room, "My dad says immigrants are criminals and it breaks my heart.")
    row = decision(hearth_stack, event_id)
    assert row is not None
    assert [d["kind"] for d in row.dispositions] == ["allow"]


@pytest.mark.parametrize(
    "text",
    [
        "Thanks everyone, I slept a bit better last night.",
        "Honestly this week has been fucking exhausting, but I'm still here.",
        "When I was a kid he told me to kill myself, and I believed him for years.",
        "My brother died by suicide two years ago and the anniversary is next week.",
        "This commute is killing me lol",
    ],
)
def test_ordinary_support_talk_is_delivered_and_its_decision_stored(hearth_stack, room_and_member, text):
    room, member = room_and_member
    event_id = member.say(room, text)
    row = decision(hearth_stack, event_id)
    assert row is not None
    assert row.source == "gate"
    assert [d["kind"] for d in row.dispositions] == ["allow"]
    assert text not in repr(row.model_dump()), "decisions must not store message text"


@pytest.mark.parametrize(
    "text",
    [
        "I have the pills ready and I'm going to take them all tonight.",
        # a toxicity model may read this as a threat (an earlier offline head did): the crisis reading wins
        "I'm on the roof and I'm going to jump",
    ],
)
def test_crisis_is_never_blocked_and_raises_an_escalation(hearth_stack, room_and_member, text):
    room, member = room_and_member
    event_id = member.say(room, text)
    row = decision(hearth_stack, event_id)
    assert "escalate" in [d["kind"] for d in row.dispositions]

    def escalation():
        with Session(hearth_stack.engine) as s:
            return s.exec(select(Escalation).where(Escalation.first_event_id == event_id)).first()

    esc = wait_for(escalation, timeout=20, what="an escalation for the crisis message")
    assert esc.severity == "imminent"
    assert esc.sender == member.user_id


def test_message_delivered_while_the_gate_was_down_is_rescreened_and_redacted(hearth_stack, room_and_member):
    hs = hearth_stack
    room, member = room_and_member
    ok_before = member.say(room, "hello again")
    wait_for(lambda: decision(hs, ok_before) and decision(hs, ok_before).acted_at, what="the bot to act")
    stack.stop_hearth(hs.layout)
    try:
        # check_event_for_spam fails open while Hearth is down: the message is delivered.
        abusive = member.say(room, "kys, nobody here wants you, you worthless idiot")
    finally:
        stack.start_hearth(hs.layout)
    row = wait_for(lambda: decision(hs, abusive), timeout=60, what="the bot to re-screen the message")
    assert row.source == "rescreen"

    def redacted():
        ev = next((e for e in member.messages(room) if e["event_id"] == abusive), None)
        return ev is not None and not ev.get("content")

    wait_for(redacted, timeout=30, what="the delivered abusive message to be redacted")


def test_members_may_not_invite_members_but_staff_may(hearth_stack, room_and_member):
    room, member = room_and_member
    stranger = hearth_stack.member("stranger")
    with pytest.raises(MatrixError) as e:
        member.invite(room, stranger.user_id)
    assert e.value.status == 403
    assert e.value.body.get("org.hearth.reason") == "invite_policy"
    hearth_stack.bot().invite(room, stranger.user_id)  # the bot (like staff) always may


def test_healthz_names_the_active_toxicity_scorer(hearth_stack):
    body = httpx.get(f"{hearth_stack.layout.hearth_url}/healthz", timeout=5).json()
    moderation = body["parts"]["moderation"]
    assert moderation["ok"] is True
    assert moderation["toxicity"]


def test_a_method_request_is_escalated_and_flagged_with_its_text_kept_until_purge(
    hearth_stack, room_and_member
):
    room, member = room_and_member
    text = "what's the lethal dose of my sleeping tablets"
    event_id = member.say(room, text)  # a person who may be in crisis: never blocked

    def flagged():
        with Session(hearth_stack.engine) as s:
            return s.exec(select(FlaggedMessage).where(FlaggedMessage.event_id == event_id)).first()

    row = wait_for(flagged, timeout=30, what="the message to be flagged for human review")
    assert row.body == text  # kept because a moderator needs it ...
    assert (row.purge_after - row.created_at).days == 30  # ... and only until the retention purge
    kinds = [d["kind"] for d in decision(hearth_stack, event_id).dispositions]
    assert "escalate" in kinds
    assert "block" not in kinds


def _escalation_for(hs, event_ids):
    with Session(hs.engine) as s:
        return s.exec(select(Escalation).where(Escalation.first_event_id.in_(event_ids))).first()


def test_a_distressed_member_posting_eight_messages_in_twenty_seconds_is_heard_not_muted(
    hearth_stack, room_and_member
):
    """Flooding is muted, but not when the person flooding is in crisis: every message is delivered
    and the crisis reaches the staff; the flood becomes a flag for a person to look at."""
    room, member = room_and_member
    burst = DISTRESSED_BURST
    sent = []
    for text in burst:
        sent.append(member.say(room, text))  # a 403 here would raise
        time.sleep(2.0)
    rows = [decision(hearth_stack, e) for e in sent]
    kinds = [d["kind"] for r in rows if r is not None for d in r.dispositions]
    assert "mute" not in kinds
    assert "block" not in kinds
    assert "escalate" in kinds
    wait_for(lambda: _escalation_for(hearth_stack, sent), timeout=20, what="an escalation for the burst")
    bodies = [ev["content"].get("body", "") for ev in member.messages(room) if ev["type"] == "m.room.message"]
    assert all(t in bodies for t in burst)


def test_messages_read_together_raise_an_imminent_escalation(hearth_stack, room_and_member):
    room, member = room_and_member
    said = ["I've made up my mind.", "Tonight.", "Goodbye all, thank you for everything"]
    sent = [member.say(room, t) for t in said]

    def imminent():
        esc = _escalation_for(hearth_stack, sent)
        return esc if esc is not None and esc.severity == "imminent" else None

    esc = wait_for(imminent, timeout=20, what="an imminent escalation for the three messages read together")
    assert esc.sender == member.user_id
    with Session(hearth_stack.engine) as s:  # one escalation per person per room per episode
        assert len(s.exec(select(Escalation).where(Escalation.first_event_id.in_(sent))).all()) == 1


def test_support_group_harm_is_refused_with_its_own_kind_message(hearth_stack, room_and_member):
    room, member = room_and_member
    with pytest.raises(MatrixError) as e:
        member.say(room, "you're so close to your goal weight, just skip dinner again, nobody will notice")
    assert e.value.status == 403
    assert e.value.body["org.hearth.reason"].startswith("harm.pro_eating_disorder")
    assert "eating-disorder" in e.value.body["error"]


def test_a_members_crisis_rings_the_clinician_and_names_people_in_words(hearth_stack, room_and_member):
    """A real crisis sent by a member: the on-call clinician's ``/notifications`` holds the alert (a
    highlight under Synapse's default push rules), naming the member and the clinician by their
    display names and the category in words."""
    room, member = room_and_member
    member.call(
        "PUT", f"/_matrix/client/v3/profile/{q(member.user_id)}/displayname", {"displayname": "Robin"}
    )
    clinician = staff_user(hearth_stack, CLINICIAN)
    wait_for(
        lambda: next(
            (
                e
                for e in member.state(room)
                if e["type"] == "m.room.member"
                and e["state_key"] == member.user_id
                and e["content"].get("displayname") == "Robin"
            ),
            None,
        ),
        what="the member's display name in the room",
    )
    sent = member.say(
        room, "I took all of them about twenty minutes ago and I'm getting really sleepy. bye everyone"
    )
    esc = wait_for(lambda: _escalation_for(hearth_stack, [sent]), timeout=20, what="the escalation")

    def notified() -> dict | None:
        notes = clinician.call("GET", "/_matrix/client/v3/notifications?limit=50")["notifications"]
        return next(
            (
                n
                for n in notes
                if (n["event"]["content"].get("org.hearth.escalation") or {}).get("id") == esc.id
            ),
            None,
        )

    note = wait_for(notified, timeout=10, what="the clinician's notification for the alert")
    assert "highlight" in [a.get("set_tweak") for a in note["actions"] if isinstance(a, dict)]
    body = note["event"]["content"]["body"]
    assert f"Member: Robin ({member.user_id})" in body
    assert f"On call: Test clinician on call ({CLINICIAN})" in body
    assert category_words(esc.category) in body
    assert f"· {esc.category}\n" not in body


def _bot_messages(hs, member, room: str) -> list[dict]:
    return [
        e
        for e in member.messages(room)
        if e["type"] == "m.room.message" and e["sender"] == hs.layout.bot_user_id
    ]


def test_a_uk_space_gives_samaritans_first_and_the_member_can_choose_their_country(hearth_stack):
    """The space's region decides the lines (UK: Samaritans first, no US numbers); ``!region US`` in
    the private room answers with the US lines at once and decides the next crisis' lines."""
    hs = hearth_stack
    slug = f"e2e-uk-{secrets.token_hex(3)}"
    with Session(hs.engine) as s:
        s.add(
            ProvisionedSpace(
                theme_slug=slug,
                room_id=f"!{slug}:localhost",
                alias=f"#{slug}:localhost",
                theme_version=1,
                region="GB",
                updated_at=datetime.now(UTC),
            )
        )
        s.commit()
    rooms = [hearth_room(hs, space=slug) for _ in range(2)]
    member = hs.member()
    for room in rooms:
        member.join(room)
    try:
        member.say(
            rooms[0], "I've written my goodbye letters and I'm going to do it tonight when everyone's asleep"
        )
        dm = join_private_room_with_the_bot(member)
        first = wait_for(lambda: _bot_messages(hs, member, dm), timeout=30, what="the crisis resources")[0]
        body = first["content"]["body"]
        assert first["content"]["org.hearth.resources"]["region"] == "GB"
        bullets = [line for line in body.splitlines() if line.startswith("• ")]
        assert bullets[0].startswith("• Samaritans: call 116 123")
        assert "999" in body
        assert "988" not in body

        asked = member.say(dm, "!region US")

        def answer() -> dict | None:
            return next(
                (
                    e
                    for e in _bot_messages(hs, member, dm)
                    if (e["content"].get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id")
                    == asked
                ),
                None,
            )

        reply = wait_for(answer, timeout=20, what="the bot's answer to !region US")["content"]
        assert reply["body"].startswith("Thank you. From now on I'll show you help for United States.")
        assert "988" in reply["body"]

        member.say(rooms[1], "the pills are all in front of me and I've decided, tonight is the night")
        resources = wait_for(
            lambda: (
                [
                    e
                    for e in _bot_messages(hs, member, dm)
                    if (e["content"].get("org.hearth.resources") or {}).get("region") == "US"
                    and "m.relates_to" not in e["content"]
                ]
                or None
            ),
            timeout=30,
            what="the second crisis' resources for the US",
        )
        assert "call 911" in resources[0]["content"]["body"]
        assert "Samaritans" not in resources[0]["content"]["body"]
    finally:
        remove_catalogue_rooms(hs, ProvisionedRoom.space_slug == slug)
        with Session(hs.engine) as s:
            sp = s.get(ProvisionedSpace, slug)
            if sp is not None:
                s.delete(sp)
            s.commit()


def test_take_puts_the_clinician_in_the_care_room_and_the_persons_replies_reach_the_case(
    hearth_stack, room_and_member
):
    """Alert to conversation: the person's reply before anyone takes the case pages the on-call
    clinician (no text in the staff room); ``!take`` invites the clinician into the care room, which
    gets its consultation-office scene, and the person is told who joined; later replies stay between
    them; resolving says so to the person."""
    hs = hearth_stack
    room, member = room_and_member
    clinician = staff_user(hs, CLINICIAN)
    staff = staff_room(hs)
    sent = member.say(
        room, "I've got the tablets counted out on the table and I'm going to take them tonight"
    )
    esc = wait_for(lambda: _escalation_for(hs, [sent]), timeout=20, what="the escalation")
    care_room = join_private_room_with_the_bot(member)
    wait_for(lambda: _bot_messages(hs, member, care_room), timeout=30, what="the crisis resources")

    reply_text = "i dont know why im telling a bot this but im really scared"
    member.say(care_room, reply_text)

    def page() -> dict | None:
        return next(
            (
                e
                for e in clinician.messages(staff)
                if e["type"] == "m.room.message"
                and e["content"].get("body", "").startswith("💬")
                and (e["content"].get("org.hearth.escalation") or {}).get("id") == esc.id
            ),
            None,
        )

    paged = wait_for(page, timeout=20, what="the page for the person's reply")["content"]
    assert paged["m.mentions"] == {"user_ids": [CLINICIAN]}
    assert f"!take {esc.id}" in paged["body"]
    assert reply_text not in json.dumps(paged)  # the staff room never gets the text
    assert _case(hs, esc.id).care_replies == 1

    asked = clinician.say(staff, f"!take {esc.id}")
    answered = wait_for(
        lambda: next(
            (
                e
                for e in clinician.messages(staff)
                if (e["content"].get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id") == asked
            ),
            None,
        ),
        what="the answer to !take",
    )
    assert "care room" in answered["content"]["body"]
    # the invite goes out through the outbox after the answer: wait for it, as a client would
    invited = wait_for(
        lambda: any(
            e["type"] == "m.room.member" and e.get("state_key") == CLINICIAN
            and e["content"].get("membership") == "invite"
            for e in hs.bot().state(care_room)
        ),
        timeout=30,
        what="the clinician's invite to the care room",
    )
    assert invited
    clinician.join(care_room)
    scene = next(e for e in clinician.state(care_room) if e["type"] == "org.hearth.room.scene")
    assert scene["content"]["preset"] == "consultation-office"
    assert scene["content"]["facilitation"]["mode"] == "clinician-facilitated"
    told = wait_for(
        lambda: [
            e
            for e in _bot_messages(hs, member, care_room)
            if "from Hearth's care team has joined this room" in e["content"].get("body", "")
        ],
        what="the person told who joined",
    )
    assert told[0]["content"]["body"].startswith("Test clinician on call from Hearth's care team")
    taken = _case(hs, esc.id)
    assert (taken.status, taken.taken_by, taken.care_room_id) == ("acknowledged", CLINICIAN, care_room)
    assert reply_text in [e["content"].get("body") for e in clinician.messages(care_room)]  # they can read it

    member.say(care_room, "ok. thank you for coming")
    wait_for(lambda: _case(hs, esc.id).care_replies == 2 or None, what="the second reply attached")
    time.sleep(1)
    assert (
        sum(
            1
            for e in clinician.messages(staff)
            if e["content"].get("body", "").startswith("💬")
            and (e["content"].get("org.hearth.escalation") or {}).get("id") == esc.id
        )
        == 1
    )

    clinician.say(staff, f"!resolve {esc.id} contacted talked it through, safe plan agreed")
    wait_for(
        lambda: [
            e
            for e in _bot_messages(hs, member, care_room)
            if "closed this check-in" in e["content"].get("body", "")
        ],
        what="the kind closing",
    )


def _case(hs, esc_id: str) -> Escalation:
    with Session(hs.engine) as s:
        esc = s.get(Escalation, esc_id)
        assert esc is not None
        return esc


def _mentioning(n: int, *, room_mention: bool = False, text: str = "") -> dict:
    people = [f"@friend{i}{secrets.token_hex(2)}:localhost" for i in range(n)]
    body = (
        text
        or f"Thank you all for the kind replies ({n}), it helped me get through the evening {secrets.token_hex(2)}."
    )
    return {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": people, "room": room_mention}}


def _joined(hs, room: str, user: str) -> None:
    from bridge.models import RoomMember

    def seen() -> bool:
        with Session(hs.engine) as s:
            return s.get(RoomMember, (room, user)) is not None

    wait_for(seen, timeout=30, what="the bot to record the join (the trust period starts there)")


def test_a_new_member_may_mention_a_few_people_but_not_many_nor_the_room(hearth_stack, room_and_member):
    hs = hearth_stack
    room, member = room_and_member
    _joined(hs, room, member.user_id)
    member.send(room, _mentioning(3))  # up to moderation.new_member_mention_limit (3): delivered
    for content, reason in [
        (_mentioning(4), "mention up to 3 people"),
        (_mentioning(0, room_mention=True), "@room"),
    ]:
        with pytest.raises(MatrixError) as e:
            member.send(room, content)
        assert e.value.status == 403
        assert e.value.body["org.hearth.reason"] == "new_member_mentions"
        assert reason in e.value.body["error"]
    # A person in crisis is never silenced, whoever they mention.
    crisis = member.send(
        room, _mentioning(5, text="I have the pills counted out and I'm going to take them all tonight")
    )
    wait_for(lambda: decision(hs, crisis), timeout=30, what="the crisis message screened and delivered")
    resolve_open_escalations(hs)
    # After the trust period (the clock moved on by an hour) the limit no longer applies.
    offset = hs.layout.root / "clock_offset"
    before = offset.read_text() if offset.exists() else "0"
    offset.write_text(str(float(before or 0) + 3700))
    try:
        member.send(room, _mentioning(4))
    finally:
        offset.write_text(before)
