"""The clinicians' dashboard in a real browser (Debian's chromium, driven by Playwright, headless):
a clinician signs in with their Matrix account, sees a new escalation appear without a reload, takes
it (which acknowledges it) and the staff-room alert is edited; a moderator is refused the case page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from moderation.escalation import Escalation, SlaPolicy, raise_escalation
from tests.e2e.conftest import sign_in_page as _sign_in
from tests.e2e.escalation_staff import CLINICIAN, MODERATOR, staff_room, staff_user
from tests.e2e.matrix import wait_for

pytestmark = pytest.mark.e2e


def _raise(hs) -> str:
    member = hs.member()
    room = member.create_room(name="check-in", preset="private_chat")
    event_id = member.say(room, "a message the detector found concerning")
    with Session(hs.engine) as s:
        esc, _ = raise_escalation(
            s,
            room_id=room,
            sender=member.user_id,
            event_id=event_id,
            severity="imminent",
            category="plan_or_means",
            signals=[{"detector": "crisis", "label": "crisis.plan_or_means", "score": 0.97}],
            excerpt="a message the detector found concerning",
            space="grief",
            locale="en-GB",
            now=datetime.now(UTC),
            sla=SlaPolicy(imminent=300),
            on_call=[CLINICIAN],
        )
        s.commit()
        return esc.id


def test_a_clinician_signs_in_sees_a_case_arrive_live_and_takes_it(hearth_stack, browser):
    hs = hearth_stack
    staff_user(hs, CLINICIAN)  # in the staff room, where the alert and its edit go
    page = _sign_in(browser, hs, CLINICIAN)
    page.wait_for_selector("#queue")
    assert "Test clinician on call (clinician)" in page.inner_text("header")
    page.wait_for_selector("#live.on")  # the event stream is open

    esc_id = _raise(hs)
    row = page.wait_for_selector(f'tr[data-id="{esc_id}"]', timeout=15000)  # no reload
    text = row.inner_text()
    assert "imminent" in text
    assert "plan or means" in text
    assert "left" in text  # the SLA counts down

    page.click(f'a[href="/staff/cases/{esc_id}"]')
    page.wait_for_selector("#case")
    assert "a message the detector found concerning" in page.inner_text("main")
    page.click("#take")
    page.locator("#status", has_text="acknowledged").wait_for()  # (the page's CSP forbids eval'd waits)
    assert "With Test clinician on call in the care room" in page.inner_text("#conversation")
    assert "taken" in page.inner_text("#audit")

    bot = hs.bot()
    room = staff_room(hs)

    def edited() -> bool:
        for ev in bot.messages(room, limit=200):
            content = ev.get("content") or {}
            new = content.get("m.new_content") or {}
            if (new.get("org.hearth.escalation") or {}).get(
                "id"
            ) == esc_id and "WITH Test clinician" in new.get("body", ""):
                return True
        return False

    wait_for(edited, timeout=20, what="the staff-room alert edited to say who took it")
    with Session(hs.engine) as s:
        esc = s.get(Escalation, esc_id)
        assert esc is not None
        assert (esc.status, esc.acknowledged_by, esc.taken_by) == ("acknowledged", CLINICIAN, CLINICIAN)

    page.click("#sign-out")
    page.wait_for_selector("#sign-in")


def test_a_moderator_is_refused_the_clinical_pages(hearth_stack, browser):
    hs = hearth_stack
    esc_id = _raise(hs)
    page = _sign_in(browser, hs, MODERATOR)
    page.wait_for_selector("#mod-queue")  # signed in at /staff, a moderator lands on their own pages
    assert page.url.endswith("/mod")
    response = page.goto(f"{hs.layout.hearth_url}/staff/cases/{esc_id}")
    assert response is not None
    assert response.status == 403
    assert "a message the detector found concerning" not in page.content()


def test_signing_in_with_a_wrong_password_says_so_and_lets_nobody_in(hearth_stack, browser):
    hs = hearth_stack
    someone = hs.member()  # (a wrong password counts against that account's logins at the homeserver)
    page = browser.new_context().new_page()
    page.goto(f"{hs.layout.hearth_url}/staff")
    page.fill("#username", someone.user_id[1:].split(":", 1)[0])
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    page.locator("#sign-in-error", has_text="Could not sign in").wait_for()
    assert page.query_selector("#queue") is None
