"""Volunteer moderators end to end (issue 17): reports through the Matrix report API become review
cards in ``#hearth-moderators`` (never in the clinicians' room), mutes and bans across a space expire
on a controllable clock (``clock_offset_file``) across a restart, appeals need a second moderator,
and the bot never sanctions staff. Real Synapse, real Hearth, real database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session, col, select

from moderation import casework as cw
from moderation.casework import Appeal, ModCase, ModReport, Sanction
from spaces.models import ProvisionedRoom
from tests.e2e.conftest import (
    bot_says,
    command,
    hearth_room,
    moderator,
    moderators_room,
    remove_catalogue_rooms,
    resolve_open_escalations,
    sign_in_page,
    wait_escalated,
)
from tests.e2e.escalation_staff import (
    ADMIN,
    CLINICIAN,
    MODERATOR,
    join_private_room_with_the_bot,
    matrix_account,
    staff_room,
    staff_user,
)
from tests.e2e.matrix import MatrixError, User, q, wait_for

pytestmark = pytest.mark.e2e

CRISIS = "I have the pills counted out and I'm going to take them all tonight"


def shift_clock(hs, seconds: float) -> None:
    """Move Hearth's clock (it re-reads the offset file when it changes)."""
    path = hs.layout.root / "clock_offset"
    current = float(path.read_text() or 0) if path.exists() else 0.0
    path.write_text(str(current + seconds))


@pytest.fixture(scope="module", autouse=True)
def _leave_the_stack_as_found(hearth_stack) -> Iterator[None]:
    resolve_open_escalations(hearth_stack)
    yield
    (hearth_stack.layout.root / "clock_offset").write_text("0")
    resolve_open_escalations(hearth_stack)
    remove_catalogue_rooms(hearth_stack, col(ProvisionedRoom.space_slug).startswith("e2e-mods-"))


def space_with_rooms(hs, n: int = 2) -> tuple[str, list[str]]:
    """A space of ``n`` rooms the bot made, in Hearth's catalogue."""
    slug = f"e2e-mods-{secrets.token_hex(3)}"
    return slug, [hearth_room(hs, space=slug, prefix=f"{slug}-") for _ in range(n)]


def until_done(hs, mod: User, text: str) -> str:
    """A sanction command, repeated until the bot has recorded the member's joins (it answers with
    "in none of Hearth's rooms" until then)."""

    def attempt() -> str | None:
        answer = command(hs, mod, text)
        if answer.startswith("Done"):
            return answer
        assert "in none of Hearth's rooms" in answer, answer
        return None

    return wait_for(attempt, timeout=30, what=f"{text!r} to be carried out")


def case_for(hs, event_id: str) -> ModCase | None:
    with Session(hs.engine) as s:
        return s.exec(select(ModCase).where(ModCase.event_id == event_id)).first()


def refused(member: User, room: str, text: str) -> str:
    with pytest.raises(MatrixError) as e:
        member.say(room, text)
    assert e.value.status == 403
    return str(e.value.body.get("error", ""))


# --- reports ----------------------------------------------------------------------------------


def test_a_report_becomes_a_card_for_the_moderator_on_duty_and_never_reaches_the_clinicians(hearth_stack):
    hs = hearth_stack
    _, (room, _) = space_with_rooms(hs)
    mod = moderator(hs)
    clinician = staff_user(hs, CLINICIAN)  # in #hearth-staff
    author, reporter = hs.member("author"), hs.member("reporter")
    author.join(room)
    reporter.join(room)
    event_id = author.say(room, "Does anyone else find Thursdays the hardest day of the week?")
    reporter.call(
        "POST",
        f"/_matrix/client/v3/rooms/{q(room)}/report/{q(event_id)}",
        {"reason": "they keep messaging me privately", "score": -100},
    )

    mod_room = moderators_room(hs)
    case = wait_for(lambda: case_for(hs, event_id), timeout=30, what="the report's case")
    card = bot_says(
        hs,
        mod,
        mod_room,
        lambda ev: case.id in str((ev.get("content") or {}).get("body", "")),
        "the report's card in the moderators' room",
    )
    content = card["content"]
    assert content["msgtype"] == "m.text"  # notifies (a notice would not, under default push rules)
    assert MODERATOR in content["m.mentions"]["user_ids"]
    assert "they keep messaging me privately" in content["body"]
    assert "Thursdays the hardest day" in content["body"]  # the excerpt kept for review
    assert reporter.user_id in content["body"]
    case = case_for(hs, event_id)
    assert case is not None
    assert case.card_event_id == card["event_id"]
    assert case.reports == 1
    assert card["content"]["org.hearth.mod_case"]["id"] == case.id

    # The clinicians' room has no moderation card, and the moderator is not in it.
    staff = clinician.messages(staff_room(hs), limit=100)
    assert not any(case.id in str((ev.get("content") or {}).get("body", "")) for ev in staff)

    # A restart reads the homeserver's reports again from where it was: no duplicate.
    hs.restart_hearth()
    wait_for(lambda: hs_healthy(hs), timeout=60, what="Hearth back")
    reporter2 = hs.member("reporter")
    reporter2.join(room)
    reporter2.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/report/{q(event_id)}", {"reason": "same"})
    wait_for(
        lambda: (case_for(hs, event_id) or case).reports == 2 or None, timeout=30, what="the second report"
    )
    with Session(hs.engine) as s:
        reports = s.exec(select(ModReport).where(ModReport.case_id == case.id)).all()
    assert sorted(r.reporter for r in reports) == sorted([reporter.user_id, reporter2.user_id])


def hs_healthy(hs) -> bool | None:
    try:
        r = httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=5)
    except httpx.HTTPError:
        return None
    return True if r.status_code == 200 else None


def test_report_as_a_reply_reaches_the_moderators_and_is_tidied_away(hearth_stack):
    hs = hearth_stack
    _, (room, _) = space_with_rooms(hs)
    mod = moderator(hs)
    author, reporter = hs.member("author"), hs.member("reporter")
    author.join(room)
    reporter.join(room)
    event_id = author.say(room, "Anyone want to meet up in person after the session on Saturday?")
    report = reporter.send(
        room,
        {
            "msgtype": "m.text",
            "body": "!report asking people to meet offline",
            "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
        },
    )
    case = wait_for(lambda: case_for(hs, event_id), timeout=30, what="the !report case")
    assert case.reports == 1
    bot_says(
        hs, mod, moderators_room(hs), lambda ev: case.id in str(ev["content"].get("body", "")), "its card"
    )

    def tidied() -> bool | None:
        ev = reporter.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/event/{q(report)}")
        return True if not ev.get("content") else None  # redacted

    wait_for(tidied, timeout=30, what="the !report message redacted")


def _trusted(hs, reporter: str, upheld: int = 3) -> None:
    """Give ``reporter`` a record of upheld reports (earlier cases a moderator actioned)."""
    now = datetime.now(UTC)
    with Session(hs.engine) as s:
        for _ in range(upheld):
            key = secrets.token_hex(4)
            result = cw.add_report(
                s,
                source_key=f"reply:$past-{key}",
                room_id="!past:localhost",
                event_id=f"$past-{key}",
                subject="@someone-else:localhost",
                space=None,
                reporter=reporter,
                reason="earlier",
                now=now,
            )
            assert result is not None
            cw.decide_case(
                s, result[0].id, actor=MODERATOR, status=cw.CaseStatus.ACTIONED, decision="x", now=now
            )
        s.commit()


def test_a_message_two_trusted_reporters_report_is_hidden_until_a_moderator_decides(hearth_stack):
    hs = hearth_stack
    _, (room, _) = space_with_rooms(hs)
    mod = moderator(hs)
    author, first, second = hs.member("author"), hs.member("trusted"), hs.member("trusted")
    for m in (author, first, second):
        m.join(room)
    _trusted(hs, first.user_id)
    _trusted(hs, second.user_id)
    # delivered by the gate (the eighth support model refuses the earlier text of this test, "Join my
    # other group instead, this one is too quiet, find me on my handle there", as a threat)
    text = "Skip the GP, my herbal tea cured my anxiety in a week, everyone should try it"
    event_id = author.say(room, text)
    for r in (first, second):
        r.call(
            "POST", f"/_matrix/client/v3/rooms/{q(room)}/report/{q(event_id)}", {"reason": "dangerous advice"}
        )

    def hidden() -> ModCase | None:
        case = case_for(hs, event_id)
        return case if case is not None and case.hidden_at is not None else None

    case = wait_for(hidden, timeout=30, what="the message hidden after two trusted reports")
    assert case.trusted_reports == 2
    ev = author.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/event/{q(event_id)}")
    assert not ev.get("content")  # redacted in the room
    bot_says(
        hs, mod, moderators_room(hs), lambda e: "hidden from the room" in e["content"].get("body", ""), "card"
    )

    assert "dismissed" in command(hs, mod, f"!dismiss {case.id} a personal opinion, not advice to harm")
    restored = bot_says(
        hs, author, room, lambda e: "Restored by the moderators" in e["content"].get("body", ""), "restored"
    )
    assert text in restored["content"]["body"]


def test_a_report_of_a_member_as_a_whole_becomes_a_case(hearth_stack):
    hs = hearth_stack
    mod = moderator(hs)
    target, reporter = hs.member("pest"), hs.member("reporter")
    reporter.call(
        "POST", f"/_matrix/client/v3/users/{q(target.user_id)}/report", {"reason": "messages me all night"}
    )

    def case() -> ModCase | None:
        with Session(hs.engine) as s:
            return s.exec(select(ModCase).where(ModCase.subject == target.user_id)).first()

    found = wait_for(case, timeout=30, what="the member report's case")
    assert found.room_id == ""
    assert found.reports == 1
    card = bot_says(
        hs, mod, moderators_room(hs), lambda e: found.id in e["content"].get("body", ""), "its card"
    )
    assert "messages me all night" in card["content"]["body"]
    assert "a report of the member" in card["content"]["body"]


def test_a_reaction_on_a_card_asks_first_and_the_same_moderator_confirms(hearth_stack):
    hs = hearth_stack
    _, (room, _) = space_with_rooms(hs)
    mod, other = moderator(hs), moderator(hs, ADMIN)
    author, reporter = hs.member("author"), hs.member("reporter")
    author.join(room)
    reporter.join(room)
    event_id = author.say(room, "I'll be posting my playlist links here every hour from now on")
    reporter.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/report/{q(event_id)}", {"reason": "spam"})
    case = wait_for(lambda: (c := case_for(hs, event_id)) and c.card_event_id and c, timeout=30, what="card")
    mod_room = moderators_room(hs)

    def react(user: User, target: str, key: str) -> None:
        user.send(
            mod_room,
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}},
            "m.reaction",
        )

    react(mod, case.card_event_id, "🔇")
    question = bot_says(
        hs,
        mod,
        mod_room,
        lambda e: "to confirm" in e["content"].get("body", "") and case.subject in e["content"]["body"],
        "the bot's question",
    )
    assert "1 hour" in question["content"]["body"]  # the default for a first mute
    react(other, question["event_id"], "👍")  # another moderator cannot confirm someone else's action
    react(mod, question["event_id"], "👍")

    def muted() -> bool | None:
        with Session(hs.engine) as s:
            return (
                True if s.exec(select(Sanction).where(Sanction.user_id == author.user_id)).first() else None
            )

    wait_for(muted, timeout=30, what="the confirmed mute")
    with Session(hs.engine) as s:
        sanction = s.exec(select(Sanction).where(Sanction.user_id == author.user_id)).one()
    assert sanction.by == MODERATOR
    assert sanction.case_id == case.id
    assert "paused" in refused(author, room, "hello again everyone")


# --- sanctions --------------------------------------------------------------------------------


def test_mute_refuses_in_every_room_of_the_space_never_silences_a_crisis_and_expires_across_a_restart(
    hearth_stack,
):
    hs = hearth_stack
    slug, rooms = space_with_rooms(hs)
    mod = moderator(hs)
    member = hs.member("muted")
    for room in rooms:
        member.join(room)
    member.say(rooms[0], "hello everyone")  # the bot records the joins meanwhile

    answer = until_done(hs, mod, f"!mute {member.user_id} 10m being unkind to newcomers")
    assert f"mute in {slug}" in answer  # the member's one space, found from their rooms
    for room in rooms:
        error = refused(member, room, "just saying hi again")
        assert "paused" in error
        assert "being unkind to newcomers" in error
    # A person in crisis is never silenced, muted or not: delivered and escalated.
    crisis = member.say(rooms[1], CRISIS)

    wait_escalated(hs, crisis, "the muted member's crisis escalated")
    # The member was told privately, with how to appeal.
    private = join_private_room_with_the_bot(member)
    bot_says(
        hs, member, private, lambda ev: "!appeal" in str(ev["content"].get("body", "")), "the mute notice"
    )

    shift_clock(hs, 11 * 60)
    hs.restart_hearth()
    wait_for(lambda: hs_healthy(hs), timeout=60, what="Hearth back")
    wait_for(lambda: _ended(hs, member.user_id, "mute"), timeout=30, what="the mute to end on expiry")
    member.say(rooms[0], "thanks for having me back")
    resolve_open_escalations(hs)


def _ended(hs, user: str, kind: str) -> bool | None:
    with Session(hs.engine) as s:
        rows = s.exec(select(Sanction).where(Sanction.user_id == user, Sanction.kind == kind)).all()
    return True if rows and all(r.ended_at is not None and r.end_reason == "expired" for r in rows) else None


def test_a_ban_with_a_duration_covers_the_space_and_lifts_itself(hearth_stack):
    hs = hearth_stack
    slug, rooms = space_with_rooms(hs)
    mod = moderator(hs)
    member = hs.member("banned")
    member.join(rooms[0])
    answer = command(hs, mod, f"!ban {member.user_id} 1h selling supplements --space {slug}")
    assert answer.startswith("Done"), answer

    def membership(room: str) -> str | None:
        for ev in hs.bot().state(room):
            if ev["type"] == "m.room.member" and ev["state_key"] == member.user_id:
                return str(ev["content"]["membership"])
        return None

    assert all(membership(r) == "ban" for r in rooms)  # also the room they never joined
    with pytest.raises(MatrixError):
        member.join(rooms[1])
    shift_clock(hs, 61 * 60)
    wait_for(lambda: _ended(hs, member.user_id, "ban"), timeout=40, what="the ban to lift itself")
    wait_for(lambda: all(membership(r) == "leave" for r in rooms) or None, timeout=30, what="unbanned")
    member.join(rooms[1])


def test_an_appeal_needs_a_moderator_other_than_the_one_who_acted(hearth_stack):
    hs = hearth_stack
    _, rooms = space_with_rooms(hs, 1)
    mod, other = moderator(hs), moderator(hs, ADMIN)
    member = hs.member("appealer")
    member.join(rooms[0])
    member.say(rooms[0], "hi all")
    until_done(hs, mod, f"!mute {member.user_id} 2h quoting something cruel")
    private = join_private_room_with_the_bot(member)
    member.say(private, "!appeal I was quoting what someone said to me, not saying it to anyone")
    thanks = bot_says(
        hs, member, private, lambda ev: "Your appeal A-" in ev["content"].get("body", ""), "thanks"
    )
    appeal_id = thanks["content"]["body"].split("Your appeal ", 1)[1].split(" ", 1)[0]
    bot_says(
        hs, mod, moderators_room(hs), lambda ev: appeal_id in ev["content"].get("body", ""), "the appeal card"
    )

    assert "another moderator must decide" in command(hs, mod, f"!appeal {appeal_id} lift")
    assert "lifted" in command(hs, other, f"!appeal {appeal_id} lift sorry, we misread it")
    with Session(hs.engine) as s:
        appeal = s.get(Appeal, appeal_id)
        assert appeal is not None
        assert appeal.status == "lifted"
        assert appeal.decided_by == ADMIN
    member.say(rooms[0], "thank you for listening")  # posting again
    bot_says(
        hs, member, private, lambda ev: "lifted the decision" in ev["content"].get("body", ""), "the outcome"
    )


def test_the_bot_never_sanctions_staff(hearth_stack):
    hs = hearth_stack
    mod = moderator(hs)
    for target in (CLINICIAN, ADMIN, MODERATOR):
        answer = command(hs, mod, f"!ban {target} 1d testing --all")
        assert "never sanctions staff" in answer
    with Session(hs.engine) as s:
        assert not s.exec(
            select(Sanction).where(col(Sanction.user_id).in_([CLINICIAN, ADMIN, MODERATOR]))
        ).all()


def test_only_moderators_may_use_the_commands(hearth_stack):
    hs = hearth_stack
    room = moderators_room(hs)
    clinician = matrix_account(hs, CLINICIAN)
    hs.bot().invite(room, clinician.user_id)  # someone let a clinician in by hand
    clinician.join(room)
    assert "Only moderators" in command(hs, clinician, "!history @someone:localhost")
    clinician.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/leave", {})


# --- the moderators' pages in a real browser ----------------------------------------------------


def test_the_queue_shows_a_new_report_live_and_a_case_is_reviewed_on_its_page(hearth_stack, browser):
    hs = hearth_stack
    _, (room, _) = space_with_rooms(hs)
    page = sign_in_page(browser, hs, MODERATOR)
    page.wait_for_selector("#mod-queue")
    page.locator("#live", has_text="live").wait_for()
    author, reporter = hs.member("author"), hs.member("reporter")
    author.join(room)
    reporter.join(room)
    event_id = author.say(room, "Happy to share my number with anyone who wants to chat offline")
    reporter.call(
        "POST", f"/_matrix/client/v3/rooms/{q(room)}/report/{q(event_id)}", {"reason": "asking for numbers"}
    )
    case = wait_for(lambda: case_for(hs, event_id), timeout=30, what="the case")
    row = page.locator(f'#mod-queue tr[data-id="{case.id}"]')
    row.wait_for(timeout=15_000)  # arrived without a reload (server-sent events)
    assert "reported by a member: asking for numbers" in row.inner_text()

    page.click(f'#mod-queue a[href="/mod/cases/{case.id}"]')
    page.wait_for_selector("#mod-case")
    assert "share my number" in page.inner_text("#excerpt")
    page.fill("#sanction-reason", "please keep contact details out of the group")
    page.select_option("#sanction-kind", "warn")
    page.click("#sanction button[type=submit]")
    page.locator("#decision", has_text="actioned").wait_for(timeout=15_000)
    with Session(hs.engine) as s:
        warned = s.exec(select(Sanction).where(Sanction.user_id == author.user_id)).all()
    assert [w.kind for w in warned] == ["warn"]
    assert warned[0].case_id == case.id

    # The member's file and the audit log, exported as CSV.
    page.goto(f"{hs.layout.hearth_url}/mod/members/{q(author.user_id)}")
    assert "please keep contact details out of the group" in page.inner_text("#sanctions")
    page.fill("#mod-note-text", "new this week, go gently #newcomer")
    page.click("#mod-note button[type=submit]")
    page.locator("#notes", has_text="newcomer").wait_for()
    page.goto(f"{hs.layout.hearth_url}/mod/audit")
    with page.expect_download() as download:
        page.click("#export-csv")
    csv_text = download.value.path().read_text()
    assert "warn" in csv_text
    assert case.id in csv_text
    assert "share my number" not in csv_text  # the audit keeps no message text


def test_a_held_message_is_highlighted_for_review_and_a_clinician_is_refused_the_moderators_pages(
    hearth_stack, browser
):
    hs = hearth_stack
    _, (room, _) = space_with_rooms(hs)
    member = hs.member("holder")
    member.join(room)
    text = "the lethal dose of paracetamol is about 50 tablets, just so you all know"
    refused(member, room, text)  # refused at the gate, and the policy also flags it
    with Session(hs.engine) as s:
        case = wait_for(
            lambda: s.exec(select(ModCase).where(ModCase.subject == member.user_id)).first(),
            timeout=30,
            what="the held message's case",
        )
    assert case.kind == "held"
    page = sign_in_page(browser, hs, MODERATOR)
    page.wait_for_selector("#mod-queue")
    page.goto(f"{hs.layout.hearth_url}/mod/cases/{case.id}")
    assert page.locator("#excerpt mark").count() >= 1  # the evidence spans
    assert page.query_selector("#redact") is None  # never delivered: nothing to redact
    page.click("#dismiss")
    page.locator("#decision", has_text="dismissed").wait_for(timeout=15_000)

    clinician = sign_in_page(browser, hs, CLINICIAN)
    clinician.wait_for_selector("#queue")
    response = clinician.goto(f"{hs.layout.hearth_url}/mod/cases/{case.id}")
    assert response is not None
    assert response.status == 403
    assert "paracetamol" not in clinician.content()


def test_an_appeal_is_decided_on_the_members_page_by_another_moderator(hearth_stack, browser):
    hs = hearth_stack
    _, rooms = space_with_rooms(hs, 1)
    mod = moderator(hs)
    member = hs.member("appealer")
    member.join(rooms[0])
    member.say(rooms[0], "hi all")
    until_done(hs, mod, f"!mute {member.user_id} 1d rude to a newcomer")
    private = join_private_room_with_the_bot(member)
    member.say(private, "!appeal it was a joke between friends, I have apologised")
    bot_says(hs, member, private, lambda ev: "Your appeal A-" in ev["content"].get("body", ""), "thanks")

    page = sign_in_page(browser, hs, ADMIN)
    page.wait_for_selector("#mod-queue")
    page.goto(f"{hs.layout.hearth_url}/mod/members/{q(member.user_id)}")
    assert "a joke between friends" in page.inner_text("#appeals")
    page.click('.appeal-decide[data-lift="true"]')
    page.locator("#appeals", has_text="lifted").wait_for(timeout=15_000)
    member.say(rooms[0], "thank you, and sorry again")  # posting again
