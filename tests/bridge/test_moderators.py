"""The moderators' bridge without a homeserver: how commands are read from what clients send, and
what a review card says (names, reason in words, excerpt, record, the moderator on duty)."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.moderators import render
from bridge.moderators.commands import command_text
from moderation.casework import ModCase, Sanction

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_pills_become_matrix_ids_and_reply_fallbacks_are_dropped():
    # Element puts the display name in `body` and the Matrix ID only in the pill's link.
    content = {
        "msgtype": "m.text",
        "body": "> <@bot:localhost> card\n\n!mute Alex Smith 2h spam",
        "format": "org.matrix.custom.html",
        "formatted_body": "<mx-reply><blockquote>card</blockquote></mx-reply>!mute "
        '<a href="https://matrix.to/#/@alex:localhost">Alex Smith</a> 2h spam &amp; links',
    }
    assert command_text(content) == "!mute @alex:localhost 2h spam & links"
    assert command_text({"body": "> <@x:y> quoted\n\n!history @alex:localhost"}) == "!history @alex:localhost"


def _case(**kw) -> ModCase:
    fields = {
        "id": "M-7K3QX2",
        "kind": "report",
        "room_id": "!room:localhost",
        "event_id": "$ev",
        "subject": "@alex:localhost",
        "space": "anxiety",
        "reason": "reported by a member: rude to me",
        "signals": ["harm.insult_harassment"],
        "priority": 2,
        "reports": 2,
        "created_at": T0,
        "updated_at": T0,
    } | kw
    return ModCase(**fields)


def test_a_card_names_people_and_rooms_and_mentions_the_moderator_on_duty():
    content = render.case_card(
        _case(),
        excerpt="you again?",
        room_name="Anxiety — general chat",
        sender_name="Alex",
        reporters=["@bea:localhost"],
        reports_against=3,
        earlier_sanctions=1,
        on_duty=["@sam:localhost"],
        names={"@sam:localhost": "Sam (volunteer moderator)"},
        tz=UTC,
    )
    body = content["body"]
    assert content["msgtype"] == "m.text"
    assert content["m.mentions"] == {"user_ids": ["@sam:localhost"]}
    for words in (
        "🚩 Reported M-7K3QX2",
        "From Alex (@alex:localhost) in Anxiety — general chat",
        "rude to me; harassment",
        "'you again?'",
        "https://matrix.to/#/!room:localhost/$ev",
        "Reported by @bea:localhost (2 report(s) of this message)",
        "3 report(s) against this member",
        "On duty: Sam (volunteer moderator)",
    ):
        assert words in body, words
    assert (
        "&lt;"
        not in render.case_card(
            _case(),
            excerpt=None,
            room_name=None,
            sender_name=None,
            reporters=[],
            reports_against=0,
            earlier_sanctions=0,
            on_duty=[],
            names={},
            tz=UTC,
        )["body"]
    )


def test_a_decided_card_stops_mentioning_and_an_edit_never_pings():
    decided = render.case_card(
        _case(status="dismissed", decided_by="@sam:localhost", decision="nothing wrong"),
        excerpt=None,
        room_name="r",
        sender_name=None,
        reporters=[],
        reports_against=0,
        earlier_sanctions=0,
        on_duty=["@sam:localhost"],
        names={},
        tz=UTC,
    )
    assert decided["m.mentions"] == {"user_ids": []}
    assert "Decision: nothing wrong" in decided["body"]
    edit = render.edit_of("$card", decided)
    assert edit["m.mentions"] == {}
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$card"}


def test_a_member_is_told_until_when_why_how_to_appeal_and_that_a_crisis_still_reaches_someone():
    mute = Sanction(
        id="S-1",
        user_id="@alex:localhost",
        kind="mute",
        scope="anxiety",
        reason="name-calling",
        by="@sam:localhost",
        created_at=T0,
        expires_at=datetime(2026, 12, 6, 14, 0, tzinfo=UTC),
    )
    body = render.member_notice(mute, "anxiety", UTC, "2 hours")["body"]
    for words in (
        "for 2 hours (until 2026-12-06 14:00 UTC)",
        "name-calling",
        "!appeal",
        "in crisis, write anyway",
    ):
        assert words in body, words
    refusal = render.muted_refusal("anxiety", mute.expires_at, "name-calling", UTC)
    assert "until 2026-12-06 14:00 UTC" in refusal
    assert "care team" in refusal
