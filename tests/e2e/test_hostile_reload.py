"""A running Hearth reloads its moderation policy and rules, its staff file and its crisis lines on
SIGHUP, and keeps its last good ones when a file is broken: the refusal names file, key and reason in
the log and in /healthz, and Hearth goes on with what it had (the gate screening, the staff signing
in, the members getting the crisis lines)."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import bot_says, hearth_room
from tests.e2e.escalation_staff import MODERATOR, join_private_room_with_the_bot, matrix_account, sign_in_body
from tests.e2e.matrix import User, wait_for
from tests.e2e.test_hostile_gate import check_message

# the rooms made here are removed from the catalogue afterwards: later files share the stack
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("e2e_rooms_removed_afterwards")]


def _reload_state(hs) -> dict:
    r = httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=10)
    return r.json()["parts"]["moderation"]


def _sighup(hs) -> None:
    os.kill(int(hs.layout.hearth_pid.read_text()), signal.SIGHUP)


def test_a_broken_policy_is_refused_on_reload_and_the_last_good_one_kept(hearth_stack):
    hs = hearth_stack
    policy = hs.layout.root / "config" / "policy.toml"
    good = policy.read_text()
    room = hearth_room(hs, prefix="e2e-hostile-")
    sender = hs.member("reload").user_id

    def refusal(text: str) -> httpx.Response:
        return check_message(hs, room, sender, f"$reload-{secrets.token_hex(4)}", text)

    try:
        policy.write_text(good.replace("flood_messages = 8", 'flood_messages = "eight"', 1))
        _sighup(hs)
        state = wait_for(lambda: _reload_state(hs)["reload_error"], timeout=60, what="the reload refused")
        assert str(policy) in state
        assert "behaviour.flood_messages" in state
        assert "whole number" in state
        assert httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=10).status_code == 200  # still working
        assert str(policy) in hs.layout.hearth_log.read_text()  # the log says which file and key
        assert refusal("go kill yourself").status_code == 403  # the last good policy still screens

        # a good edit takes effect on the next SIGHUP
        marker = f"(policy edit {secrets.token_hex(3)})"
        incitement = "incitement = \"Your message wasn't sent"
        assert incitement in good
        policy.write_text(good.replace(incitement, f"incitement = \"{marker} Your message wasn't sent", 1))
        _sighup(hs)
        wait_for(lambda: _reload_state(hs)["reload_error"] is None, timeout=60, what="the reload accepted")
        answer = refusal("go kill yourself")
        assert answer.status_code == 403
        assert marker in answer.json()["error"]
    finally:
        policy.write_text(good)
        _sighup(hs)
        wait_for(
            lambda: _reload_state(hs)["reload_error"] is None, timeout=60, what="the shipped policy back"
        )


# --- the staff file and the crisis lines (parts.escalation) -----------------------------------


def _escalation(hs) -> dict:
    r = httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=10)
    return r.json()["parts"]["escalation"]


def _reload_staff_and_resources(hs) -> dict:
    """SIGHUP, then the escalation part of /healthz once that reload has finished."""
    before = _escalation(hs)["reloads"]
    _sighup(hs)
    return wait_for(
        lambda: (state := _escalation(hs))["reloads"] > before and state, timeout=60, what="the reload"
    )


def _sign_in(hs, user: User) -> httpx.Response:
    return httpx.post(f"{hs.layout.hearth_url}/api/auth/openid", timeout=10, json=sign_in_body(user))


def _me(hs, token: str) -> httpx.Response:
    return httpx.get(
        f"{hs.layout.hearth_url}/api/auth/me", timeout=10, headers={"Authorization": f"Bearer {token}"}
    )


def test_a_broken_staff_file_is_refused_and_a_good_one_applies_at_once(hearth_stack):
    hs = hearth_stack
    staff = Path(hs.settings["escalation"]["staff_file"])
    good = staff.read_text()
    newcomer = hs.member("reload-mod")
    try:
        # broken: the running staff stay, and /healthz and the log name file, key and reason
        moderator_id = f'user_id = "{MODERATOR}"'
        assert moderator_id in good
        staff.write_text(good.replace(moderator_id, "user_id = 12", 1))
        state = _reload_staff_and_resources(hs)
        error = state["reload_error"]
        assert error is not None
        assert str(staff) in error
        assert "moderators[0].user_id" in error
        assert "valid string" in error
        assert _reload_state(hs)["reload_error"] is None  # the moderation part is not blamed
        assert httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=10).status_code == 200  # still working
        log = hs.layout.hearth_log.read_text()
        assert f"reload refused, the running configuration stays: `escalation.staff_file`: {staff}" in log
        # the last good staff file still decides who signs in
        signed = _sign_in(hs, matrix_account(hs, MODERATOR))
        assert signed.status_code == 200, signed.text
        assert signed.json()["role"] == "moderator"
        assert _sign_in(hs, newcomer).status_code == 403

        # a good edit lists a new moderator: they sign in as one at once, no restart
        staff.write_text(
            good + f'\n[[moderators]]\nuser_id = "{newcomer.user_id}"\ndisplay_name = "Reload moderator"\n'
        )
        assert _reload_staff_and_resources(hs)["reload_error"] is None
        r = _sign_in(hs, newcomer)
        assert r.status_code == 200, r.text
        assert (r.json()["role"], r.json()["display_name"]) == ("moderator", "Reload moderator")
        token = r.json()["token"]
        assert _me(hs, token).status_code == 200

        # removed again: their session ends with the next reload
        staff.write_text(good)
        assert _reload_staff_and_resources(hs)["reload_error"] is None
        ended = _me(hs, token)
        assert ended.status_code == 403
        assert "no longer listed as Hearth staff" in ended.json()["error"]
    finally:
        staff.write_text(good)
        assert _reload_staff_and_resources(hs)["reload_error"] is None


def _resources_after_joining(hs) -> str:
    """The crisis lines a new member gets with their welcome (the next resources message Hearth sends)."""
    member = hs.member("reload-res")
    member.join(hearth_room(hs, prefix="e2e-hostile-"))
    private = join_private_room_with_the_bot(member)
    lines = bot_says(
        hs, member, private, lambda ev: "org.hearth.resources" in ev["content"], "the crisis lines"
    )
    return str(lines["content"]["body"])


def test_a_broken_catalogue_is_refused_and_a_good_one_applies_to_the_next_resources_message(hearth_stack):
    hs = hearth_stack
    resources = Path(hs.settings["escalation"]["resources_file"])
    good = resources.read_text()
    line = 'name = "Find A Helpline"'  # the international set: a member with no region gets it
    assert line in good
    try:
        assert 'emergency = "911"' in good
        resources.write_text(good.replace('emergency = "911"', "emergency = 911", 1))
        error = _reload_staff_and_resources(hs)["reload_error"]
        assert error is not None
        assert str(resources) in error
        assert "regions.US.emergency" in error
        assert "valid string" in error
        assert str(resources) in hs.layout.hearth_log.read_text()
        assert "Find A Helpline" in _resources_after_joining(hs)  # the last good lines still go out

        marker = f"Helpline finder {secrets.token_hex(3)}"
        resources.write_text(good.replace(line, f'name = "{marker}"', 1))
        assert _reload_staff_and_resources(hs)["reload_error"] is None
        body = _resources_after_joining(hs)
        assert marker in body
        assert "Find A Helpline" not in body
    finally:
        resources.write_text(good)
        assert _reload_staff_and_resources(hs)["reload_error"] is None
