"""A welcome and the guidelines (issue 18): a member's first join to a space brings one private
welcome with the guidelines (formatted) and the crisis lines; ``!agree`` accepts them. With
``join.hold_until_agreed`` the member's first message is held with a pointer to the welcome until
then, but a crisis message is delivered and escalated. Real Synapse, real Hearth."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session, col, select

from bridge import stack
from bridge.models import MemberAgreement
from moderation.models import ModerationDecision
from spaces.models import ProvisionedRoom
from tests.e2e.conftest import (
    bot_says,
    hearth_room,
    remove_catalogue_rooms,
    resolve_open_escalations,
    wait_escalated,
)
from tests.e2e.escalation_staff import join_private_room_with_the_bot
from tests.e2e.matrix import MatrixError, User, wait_for

pytestmark = pytest.mark.e2e

THEME = "grief-loss"  # a real theme, for its guidelines
CRISIS = "I have the pills counted out and I'm going to take them all tonight"


@pytest.fixture(scope="module", autouse=True)
def _leave_the_stack_as_found(hearth_stack) -> Iterator[None]:
    yield
    resolve_open_escalations(hearth_stack)
    remove_catalogue_rooms(hearth_stack, col(ProvisionedRoom.alias).startswith("#e2e-welcome-"))


def theme_room(hs) -> str:
    return hearth_room(hs, space=THEME, prefix="e2e-welcome-")


def welcome_in(hs, member: User) -> tuple[str, dict]:
    private = join_private_room_with_the_bot(member)
    return private, bot_says(
        hs, member, private, lambda ev: "org.hearth.welcome" in ev["content"], "the welcome"
    )


def reply(hs, member: User, room: str, text: str, what: str) -> str:
    member.say(room, text)
    return str(
        bot_says(hs, member, room, lambda ev: what in str(ev["content"].get("body", "")), what)["content"][
            "body"
        ]
    )


def test_a_first_join_brings_one_welcome_with_formatted_guidelines_and_crisis_lines(hearth_stack):
    hs = hearth_stack
    room = theme_room(hs)
    member = hs.member("newcomer")
    member.join(room)
    private, welcome = welcome_in(hs, member)
    content = welcome["content"]
    assert content["org.hearth.welcome"] == {"space": THEME}
    assert "isn't therapy or a crisis service" in content["body"]
    assert "!agree" in content["body"]
    assert "<ul>" in content["formatted_body"] or "<p>" in content["formatted_body"]
    assert "**" not in content["formatted_body"]  # Markdown rendered, not shown raw
    # The crisis lines follow the welcome (the member's region, else the international set).
    bodies = [str((ev.get("content") or {}).get("body", "")) for ev in member.messages(private, limit=30)]
    assert any("mergency" in b for b in bodies), bodies
    # A second room of the same space brings no second welcome.
    other = theme_room(hs)
    member.join(other)
    member.say(other, "hello")  # (holding is off on this stack: delivered)
    welcomes = [
        ev for ev in member.messages(private, limit=50) if "org.hearth.welcome" in (ev.get("content") or {})
    ]
    assert len(welcomes) == 1
    assert "You can post" in reply(hs, member, private, "!agree", "You can post")


def test_with_holding_on_a_first_message_waits_for_agree_but_a_crisis_never_does(hearth_stack):
    hs = hearth_stack
    stack.stop_hearth(hs.layout)
    stack.start_hearth(hs.layout, env={"HEARTH_JOIN__HOLD_UNTIL_AGREED": "true"})
    try:
        room = theme_room(hs)
        member = hs.member("held")
        member.join(room)
        private, _ = welcome_in(hs, member)
        with pytest.raises(MatrixError) as e:
            member.say(room, "Hi everyone, I lost my dad in March")
        assert e.value.status == 403
        assert "!agree" in e.value.body["error"]
        crisis = member.say(room, CRISIS)  # never held back

        wait_escalated(hs, crisis, "the held member's crisis escalated")
        reply(hs, member, private, "!agree", "You can post")
        member.say(room, "Hi everyone, I lost my dad in March")
    finally:
        stack.stop_hearth(hs.layout)
        stack.start_hearth(hs.layout)


def test_mydata_returns_a_json_file_and_forgetme_erases_it(hearth_stack):
    hs = hearth_stack
    room = theme_room(hs)
    member = hs.member("mydata")
    member.join(room)
    private, _ = welcome_in(hs, member)
    reply(hs, member, private, "!agree", "You can post")
    said = member.say(room, "Does anyone else find Sundays the hardest?")

    def decided() -> bool | None:
        with Session(hs.engine) as s:
            return True if s.get(ModerationDecision, said) else None

    wait_for(decided, timeout=30, what="the decision stored")
    member.say(private, "!mydata")

    def file_event() -> dict | None:
        for ev in member.messages(private, limit=30):
            if (
                ev.get("sender") == hs.layout.bot_user_id
                and (ev.get("content") or {}).get("msgtype") == "m.file"
            ):
                return ev
        return None

    ev = wait_for(file_event, timeout=30, what="the data file")
    server, media_id = ev["content"]["url"].removeprefix("mxc://").split("/", 1)
    r = httpx.get(
        f"{hs.layout.hs_url}/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {member.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:200]
    data = r.json()
    assert data["user_id"] == member.user_id
    assert said in [d["event_id"] for d in data["screening_decisions"]]
    assert [w["space"] for w in data["welcomes"]] == [THEME]

    assert "!forgetme yes" in reply(hs, member, private, "!forgetme", "!forgetme yes")
    assert "erased" in reply(hs, member, private, "!forgetme yes", "Done:")
    with Session(hs.engine) as s:
        assert s.get(ModerationDecision, said) is None
        assert not s.exec(select(MemberAgreement).where(MemberAgreement.user_id == member.user_id)).all()
