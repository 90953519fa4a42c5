"""A running Hearth reloads its moderation policy and rules on SIGHUP, and keeps its last good ones
when a file is broken: the refusal names file, key and reason in the log and in /healthz, and the
gate goes on screening with what it had."""

from __future__ import annotations

import os
import secrets
import signal

import httpx
import pytest

from tests.e2e.conftest import hearth_room
from tests.e2e.matrix import wait_for
from tests.e2e.test_hostile_gate import check_message

pytestmark = pytest.mark.e2e


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
