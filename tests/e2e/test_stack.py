"""The running skeleton, end to end: real Synapse, real Hearth service, real database."""

from __future__ import annotations

import asyncio
import http.client
import re
import signal
import stat
import time

import httpx
import pytest
from sqlmodel import Session, select

from bridge import stack
from bridge.gateway import SYNC_TIMELINE_LIMIT, NioGateway
from bridge.models import SeenEvent, SyncState
from bridge.service import SYNAPSE_IDLE_CONNECTION_SECONDS
from tests.e2e.matrix import q, wait_for

pytestmark = pytest.mark.e2e


def seen(hs, event_id: str) -> SeenEvent | None:
    with Session(hs.engine) as s:
        return s.get(SeenEvent, event_id)


def gate_calls(hs, callback: str, outcome: str) -> float:
    text = httpx.get(f"{hs.layout.hearth_url}/metrics", timeout=5).text
    m = re.search(rf'hearth_gate_calls_total{{callback="{callback}",outcome="{outcome}"}} ([0-9.e+]+)', text)
    return float(m.group(1)) if m else 0.0


def test_healthz_reports_every_part(hearth_stack):
    r = httpx.get(f"{hearth_stack.layout.hearth_url}/healthz", timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["down"] == []
    assert set(body["parts"]) == {
        "database",
        "homeserver",
        "bot",
        "scheduler",
        "moderation",
        "moderators",
        "escalation",
        "sessions",
        "data_folder",
    }
    assert body["parts"]["bot"]["user_id"] == hearth_stack.layout.bot_user_id
    assert body["parts"]["database"]["dialect"] == hearth_stack.engine.dialect.name


def test_an_idle_connection_is_left_for_synapse_to_close(hearth_stack):
    """Synapse reuses an idle connection to the gate for up to 120 s and does not retry a POST on one
    closed under it: Hearth must not be the side that closes first (uvicorn's own default is 5 s)."""
    assert SYNAPSE_IDLE_CONNECTION_SECONDS >= 120
    url = httpx.URL(hearth_stack.layout.hearth_url)
    conn = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        first.read()
        assert first.status == 200
        sock = conn.sock
        time.sleep(7)
        conn.request("GET", "/healthz")  # on the same socket: http.client reconnects only when told to
        try:
            again = conn.getresponse()
        except http.client.RemoteDisconnected:
            pytest.fail("Hearth closed an idle connection Synapse may reuse")
        again.read()
        assert again.status == 200
        assert conn.sock is sock
    finally:
        conn.close()


def test_the_bot_asks_for_no_notifications_and_presence_is_off(hearth_stack):
    # Push rules and presence are per-message homeserver work the bot (and, for presence, members'
    # privacy) is better without; see bridge/gateway.py and homeserver.yaml.j2.
    bot = hearth_stack.bot()
    rule = bot.call("GET", "/_matrix/client/v3/pushrules/global/override/.m.rule.master/enabled")
    assert rule == {"enabled": True}
    member = hearth_stack.member()
    member.call("GET", "/_matrix/client/v3/sync?timeout=0&set_presence=online")  # would show them online
    r = httpx.get(
        f"{hearth_stack.layout.hs_url}/_matrix/client/v3/presence/{member.user_id}/status",
        headers={"Authorization": f"Bearer {bot.token}"},
        timeout=10,
    )
    assert r.status_code == 404 or r.json().get("presence") in (None, "offline"), r.text


def test_bot_receives_a_message_exactly_once_across_restarts(hearth_stack):
    hs = hearth_stack
    bot = hs.bot()
    room = bot.create_room(name="e2e", preset="public_chat")
    member = hs.member()
    member.join(room)
    first = member.say(room, "hello from a member")
    wait_for(lambda: seen(hs, first), what="the bot to receive the message")

    hs.restart_hearth()  # SIGTERM: clean shutdown, token saved
    log = hs.layout.hearth_log.read_text()
    assert "stopped cleanly" in log

    second = member.say(room, "a second message after the restart")
    wait_for(lambda: seen(hs, second), what="the restarted bot to receive a new message")
    assert seen(hs, first).times_seen == 1, "the restart replayed an old message"
    assert seen(hs, second).times_seen == 1


def test_bot_misses_nothing_sent_while_it_was_down(hearth_stack):
    hs = hearth_stack
    bot = hs.bot()
    room = bot.create_room(name="downtime", preset="public_chat")
    member = hs.member()
    member.join(room)
    before = member.say(room, "before")
    wait_for(lambda: seen(hs, before), what="the bot to sync")
    stack.stop_hearth(hs.layout)
    # Hearth is down: check_event_for_spam fails open, so the messages are delivered. More of them
    # than one sync returns per room: the bot fills in the limited timeline and skips none.
    while_down = [
        member.say(room, f"sent while Hearth was down ({i})") for i in range(SYNC_TIMELINE_LIMIT + 5)
    ]
    stack.start_hearth(hs.layout)
    for event_id in while_down:
        row = wait_for(lambda: seen(hs, event_id), what="each message sent during downtime")  # noqa: B023
        assert row.times_seen == 1


def test_sync_token_is_kept_in_the_database(hearth_stack):
    with Session(hearth_stack.engine) as s:
        row = s.exec(select(SyncState)).one()
    assert row.user_id == hearth_stack.layout.bot_user_id
    assert row.next_batch


def test_a_message_sent_through_synapse_reaches_the_gate(hearth_stack):
    hs = hearth_stack
    before = gate_calls(hs, "check_event_for_spam", "allow")
    room = hs.bot().create_room(name="gate", preset="public_chat")
    member = hs.member()
    member.join(room)
    member.say(room, "does this pass through the gate?")
    assert gate_calls(hs, "check_event_for_spam", "allow") > before
    assert gate_calls(hs, "user_may_join_room", "allow") >= 1


@pytest.mark.parametrize("auth", [None, "Bearer wrong-secret", "Basic abc"])
def test_gate_refuses_callers_without_the_secret(hearth_stack, auth):
    headers = {"Authorization": auth} if auth else {}
    r = httpx.post(
        f"{hearth_stack.layout.hearth_url}/_hearth/antispam/check_event_for_spam",
        json={"event": {}},
        headers=headers,
        timeout=5,
    )
    assert r.status_code == 401
    assert r.json()["errcode"] == "M_UNAUTHORIZED"


def test_gate_answers_callers_with_the_secret(hearth_stack):
    secret = hearth_stack.settings["gate"]["secret"]
    url = f"{hearth_stack.layout.hearth_url}/_hearth/antispam"
    auth = {"Authorization": f"Bearer {secret}"}
    invite = {
        "inviter": hearth_stack.layout.bot_user_id,
        "invitee": "@b:localhost",
        "room_id": "!r:localhost",
    }
    assert httpx.post(f"{url}/user_may_invite", json=invite, headers=auth).status_code == 200
    assert httpx.post(f"{url}/no_such_callback", json={}, headers=auth).status_code == 404
    bad = httpx.post(f"{url}/check_event_for_spam", content=b"not json", headers=auth)
    assert bad.status_code == 400
    assert "JSON" in bad.json()["error"]


def test_make_up_again_is_harmless(hearth_stack):
    layout = hearth_stack.layout
    pids = (layout.synapse_pid.read_text(), layout.hearth_pid.read_text())
    stack.up(layout, say=lambda _m: None)
    assert (layout.synapse_pid.read_text(), layout.hearth_pid.read_text()) == pids


def test_healthz_names_synapse_when_it_is_down(hearth_stack):
    layout = hearth_stack.layout
    stack.stop_synapse(layout)
    try:

        def down():
            r = httpx.get(f"{layout.hearth_url}/healthz", timeout=10)
            return r if r.status_code == 503 else None

        r = wait_for(down, timeout=30, what="/healthz to report the homeserver down")
        assert "homeserver" in r.json()["down"]
        assert "database" not in r.json()["down"]
    finally:
        stack.start_synapse(layout)
    wait_for(
        lambda: httpx.get(f"{layout.hearth_url}/healthz", timeout=10).status_code == 200,
        timeout=60,
        what="/healthz to recover",
    )


def test_sigkill_then_restart_recovers(hearth_stack):
    hs = hearth_stack
    hs.restart_hearth(sig=signal.SIGKILL)
    assert httpx.get(f"{hs.layout.hearth_url}/healthz", timeout=5).status_code == 200


def test_a_limited_sync_is_filled_in_so_no_event_is_skipped(hearth_stack):
    """More messages than one sync returns per room: the gateway fetches the rest from /messages,
    back to the previous sync token, and hands over every one, oldest first."""
    hs = hearth_stack
    member = hs.member("gap")
    room = member.create_room(name="sync gap", preset="private_chat")

    async def run() -> tuple[list[str], list[str]]:
        gw = NioGateway(hs.layout.hs_url, member.user_id, device_id="GAP_TEST")
        try:
            assert await gw.restore(member.token)
            first = await gw.sync(None, 0, first=True)
            sent = [
                await asyncio.to_thread(member.say, room, f"message {i}")
                for i in range(SYNC_TIMELINE_LIMIT + 7)
            ]
            batch = await gw.sync(first.next_batch, 0)
            return sent, [
                ev.event_id for ev in batch.timeline if ev.room_id == room and ev.type == "m.room.message"
            ]
        finally:
            await gw.close()

    sent, got = asyncio.run(run())
    assert got == sent


def test_the_bot_is_named_as_configured(hearth_stack):
    """``matrix.bot_display_name`` is what members see beside the bot's messages."""
    name = hearth_stack.settings["matrix"].get("bot_display_name", "Hearth")
    bot = hearth_stack.bot()
    profile = wait_for(
        lambda: (
            bot.call("GET", f"/_matrix/client/v3/profile/{q(bot.user_id)}/displayname").get("displayname")
            == name
            or None
        ),
        what="the bot's display name",
    )
    assert profile


def test_files_with_member_text_or_secrets_are_owner_only(hearth_stack):
    """The data folders are 700; settings, Synapse's config and secrets, the bot's session and
    Hearth's SQLite database (flagged messages' and excerpts' text) are 600."""
    layout = hearth_stack.layout
    for folder in (layout.root, layout.synapse_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    private = [
        layout.hearth_toml,
        layout.homeserver_yaml,
        layout.synapse_secrets,
        layout.root / "bot_session.json",
    ]
    if hearth_stack.engine.dialect.name == "sqlite":
        private.append(layout.root / "hearth.db")
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
