"""The way in for members (issue 18): ``/join`` hands out single-use registration tokens that a
person registers with through the client-server API (``m.login.registration_token``), as Element
does; a second use is refused, and so is registering without one. A refused message also brings a
private explanation. Real Synapse, real Hearth, a real browser for the page."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bridge import stack
from bridge.models import JoinRequest
from spaces.staff import load_staff
from tests.e2e.conftest import bot_says, hearth_room
from tests.e2e.escalation_staff import join_private_room_with_the_bot
from tests.e2e.matrix import MatrixError, User, q

# the rooms made here are removed from the catalogue afterwards: later files share the stack
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("e2e_rooms_removed_afterwards")]


def register_with_token(hs_url: str, token: str | None) -> httpx.Response:
    """Register as Element does: start, then complete the registration-token (and dummy) stages."""
    body = {"username": f"newmember{secrets.token_hex(4)}", "password": secrets.token_hex(12)}
    r = httpx.post(f"{hs_url}/_matrix/client/v3/register", json=body, timeout=30)
    for _ in range(3):
        if r.status_code != 401 or "session" not in r.json():
            return r
        flow = r.json()
        done = set(flow.get("completed", []))
        stages = next(f["stages"] for f in flow["flows"] if "m.login.registration_token" in f["stages"])
        stage = next(st for st in stages if st not in done)
        auth = {"type": stage, "session": flow["session"]}
        if stage == "m.login.registration_token":
            if token is None:
                return r
            auth["token"] = token
        r = httpx.post(f"{hs_url}/_matrix/client/v3/register", json={**body, "auth": auth}, timeout=30)
    return r


def test_a_join_token_registers_one_member_and_a_second_use_is_refused(hearth_stack):
    hs = hearth_stack
    r = httpx.post(f"{hs.layout.hearth_url}/api/join", timeout=30)
    assert r.status_code == 200, r.text
    given = r.json()
    assert given["homeserver"] == hs.layout.hs_url
    assert given["expires_at"]
    registered = register_with_token(hs.layout.hs_url, given["token"])
    assert registered.status_code == 200, registered.text
    member = User(hs.layout.hs_url, registered.json()["user_id"], registered.json()["access_token"])
    assert member.call("GET", "/_matrix/client/v3/account/whoami")["user_id"] == member.user_id

    again = register_with_token(hs.layout.hs_url, given["token"])
    assert again.status_code in (401, 403), again.text
    assert "user_id" not in again.json()
    without = register_with_token(hs.layout.hs_url, None)
    assert without.status_code == 401
    assert "user_id" not in without.json()


def test_a_refused_message_also_brings_a_private_explanation(hearth_stack):
    hs = hearth_stack
    room = hearth_room(hs)
    member = hs.member("refused")
    member.join(room)
    with pytest.raises(MatrixError) as e:
        member.say(room, "You are a disgusting waste of space and everyone here hates you.")
    private = join_private_room_with_the_bot(member)

    explained = bot_says(
        hs,
        member,
        private,
        lambda ev: "wasn't delivered" in str(ev["content"].get("body", "")),
        "the explanation",
    )
    body = str(explained["content"]["body"])
    assert e.value.body["error"] in body
    # Once every few minutes at most: a second refusal does not bring a second message.
    with pytest.raises(MatrixError):
        member.say(room, "Seriously, nobody here wants you, you worthless idiot.")
    time.sleep(2)
    count = sum(
        1
        for ev in member.messages(private, limit=50)
        if "wasn't delivered" in str((ev.get("content") or {}).get("body", ""))
    )
    assert count == 1


def test_the_join_page_explains_and_hands_out_a_code(hearth_stack, browser):
    hs = hearth_stack
    page = browser.new_context().new_page()
    page.goto(f"{hs.layout.hearth_url}/join")
    about = page.inner_text("#about")
    assert "peer-support" in about
    assert "not therapy and not a crisis service" in about
    page.click("#get-token")
    page.wait_for_selector("#token-box:not([hidden])", timeout=15_000)
    token = page.inner_text("#token")
    assert len(token) >= 8
    assert page.inner_text("#homeserver") == hs.layout.hs_url


def test_tokens_are_rate_limited_per_address(hearth_stack):
    hs = hearth_stack
    answers = [httpx.post(f"{hs.layout.hearth_url}/api/join", timeout=30) for _ in range(4)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]  # 3 an hour from one address
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["errcode"] == "M_LIMIT_EXCEEDED"


def test_an_operator_adds_a_staff_member_from_the_command_line(hearth_stack, tmp_path):
    hs = hearth_stack
    staff_file = tmp_path / "staff.toml"
    staff_file.write_text(Path(hs.settings["escalation"]["staff_file"]).read_text())  # not the stack's own
    user = f"@newclin{secrets.token_hex(3)}:localhost"
    cli = [sys.executable, "-m", "bridge", "--config", str(hs.layout.hearth_toml), "accounts", "staff", user]
    done = subprocess.run(
        [*cli, "--role", "clinician", "--display-name", "Dr New", "--staff-file", str(staff_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "first password" in done.stdout
    password = done.stdout.split("privately, they change it in Element): ", 1)[1].split()[0]
    assert load_staff(staff_file).role_of(user) == "clinician"
    account = hs.admin.call("GET", f"/_synapse/admin/v2/users/{q(user)}")
    assert account["displayname"] == "Dr New"
    login = httpx.post(
        f"{hs.layout.hs_url}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
        timeout=30,
    )
    assert login.status_code == 200, login.text
    again = subprocess.run(
        [*cli, "--role", "moderator", "--staff-file", str(staff_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2
    assert "already listed as clinician" in again.stderr
    assert hs.admin.call("GET", f"/_synapse/admin/v2/users/{q(user)}")["displayname"] == "Dr New"  # untouched


def accounts(hs, *args: str) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "bridge", "--config", str(hs.layout.hearth_toml), "accounts", *args]
    return subprocess.run(cli, capture_output=True, text=True, timeout=120)


def test_with_approval_a_request_waits_for_an_operator_and_the_page_shows_the_code(hearth_stack, browser):
    hs = hearth_stack
    stack.stop_hearth(hs.layout)
    stack.start_hearth(hs.layout, env={"HEARTH_JOIN__REQUIRE_APPROVAL": "true"})
    try:
        # The API: a request is held, polled, refused by an operator; an unknown one is a 404.
        r = httpx.post(f"{hs.layout.hearth_url}/api/join", timeout=30)
        assert r.status_code == 202, r.text
        held = r.json()
        assert held["status"] == "pending"
        assert "token" not in held
        poll = f"{hs.layout.hearth_url}{held['poll']}"
        assert httpx.get(poll, timeout=10).json() == {
            "reference": held["reference"],
            "status": "pending",
            "token": None,
            "homeserver": None,
            "server_name": None,
            "expires_at": None,
        }
        listed = accounts(hs, "pending")
        assert held["reference"] in listed.stdout, listed.stdout + listed.stderr
        refused = accounts(hs, "refuse", held["reference"])
        assert refused.returncode == 0, refused.stderr
        assert httpx.get(poll, timeout=10).json()["status"] == "refused"
        again = accounts(hs, "approve", held["reference"])
        assert again.returncode == 2
        assert "refused already" in again.stderr
        missing = httpx.get(f"{hs.layout.hearth_url}/api/join/requests/nope", timeout=10)
        assert missing.status_code == 404
        assert missing.json()["errcode"] == "M_NOT_FOUND"
        # Nothing about who asked is kept: the row holds no address, name or text.
        assert set(JoinRequest.model_fields) == {
            "id",
            "reference",
            "status",
            "created_at",
            "expires_at",
            "decided_at",
            "token",
            "token_expires_at",
        }

        # The page: ask, wait, an operator approves, the code appears (polled), and it registers.
        page = browser.new_context().new_page()
        page.goto(f"{hs.layout.hearth_url}/join")
        assert page.inner_text("#get-token") == "Ask for a sign-up code"
        page.click("#get-token")
        page.wait_for_selector("#pending:not([hidden])", timeout=15_000)
        reference = page.inner_text("#reference")
        assert page.is_hidden("#token-box")
        approved = accounts(hs, "approve", reference)
        assert approved.returncode == 0, approved.stderr
        page.wait_for_selector("#token-box:not([hidden])", timeout=15_000)
        assert page.is_hidden("#pending")
        registered = register_with_token(hs.layout.hs_url, page.inner_text("#token"))
        assert registered.status_code == 200, registered.text
    finally:
        stack.stop_hearth(hs.layout)
        stack.start_hearth(hs.layout)
