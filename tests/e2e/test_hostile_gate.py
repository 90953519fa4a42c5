"""Malformed and hostile calls to the gate, through real HTTP to a running Hearth: each gets a 4xx
with its reason, never a 500 (which synapse-http-antispam turns into an allow for events, and logs
with the whole event) and never an allow on the callbacks that protect rooms."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest

from tests.e2e.conftest import hearth_room

# the rooms made here are removed from the catalogue afterwards: later files share the stack
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("e2e_rooms_removed_afterwards")]

EVENT = {
    "event_id": "$x",
    "room_id": "!r:localhost",
    "sender": "@m:localhost",
    "type": "m.room.message",
    "content": {"msgtype": "m.text", "body": "hi"},
}

# (callback, body, the field the refusal must name)
MALFORMED = [
    ("check_event_for_spam", {}, "event: required"),
    ("check_event_for_spam", {"event": []}, "event: must be an object"),
    ("check_event_for_spam", {"event": "text"}, "event: must be an object"),
    (
        "check_event_for_spam",
        {"event": {k: v for k, v in EVENT.items() if k != "sender"}},
        "event.sender: required",
    ),
    ("check_event_for_spam", {"event": {**EVENT, "sender": 5}}, "event.sender: must be a string"),
    ("check_event_for_spam", {"event": {**EVENT, "content": "hi"}}, "event.content: must be an object"),
    ("check_event_for_spam", {"event": {**EVENT, "room_id": None}}, "event.room_id: must be a string"),
    ("check_event_for_spam", {"event": {**EVENT, "event_id": ["$x"]}}, "event.event_id: must be a string"),
    ("user_may_join_room", {"room": "!r:localhost", "is_invited": False}, "user: required"),
    (
        "user_may_join_room",
        {"user": 5, "room": "!r:localhost", "is_invited": False},
        "user: must be a string",
    ),
    (
        "user_may_join_room",
        {"user": "@u:localhost", "room": {}, "is_invited": False},
        "room: must be a string",
    ),
    (
        "user_may_join_room",
        {"user": "@u:localhost", "room": "!r:localhost", "is_invited": "no"},
        "is_invited",
    ),
    ("user_may_join_room", {"user": "@u:localhost", "room": "!r:localhost"}, "is_invited: required"),
    ("user_may_invite", {"inviter": "@a:localhost", "room_id": "!r:localhost"}, "invitee: required"),
    ("user_may_invite", {"inviter": None, "invitee": "@b:localhost", "room_id": "!r:localhost"}, "inviter"),
    ("user_may_invite", {"inviter": "@a:localhost", "invitee": "@b:localhost", "room_id": 1}, "room_id"),
]

# Bodies that are not a JSON object at all: (what, bytes)
NOT_AN_OBJECT = [
    ("not JSON", b"not json"),
    ("empty", b""),
    ("a JSON list", b"[1, 2]"),
    ("a JSON string", b'"event"'),
    ("invalid UTF-8", b'{"event": "\xff\xfe"}'),
    ("nested past the parser's depth", b"[" * 100_000 + b"]" * 100_000),
    ("truncated", b'{"event": {"content": '),
]


def _url(hs, callback: str) -> str:
    return f"{hs.layout.hearth_url}/_hearth/antispam/{callback}"


def _auth(hs) -> dict[str, str]:
    return {"Authorization": f"Bearer {hs.settings['gate']['secret']}"}


def check_message(hs, room: str, sender: str, event_id: str, body: str) -> httpx.Response:
    """The gate's answer to ``check_event_for_spam`` for a text message, as Synapse would ask it."""
    event = {**EVENT, "event_id": event_id, "room_id": room, "sender": sender}
    event["content"] = {"msgtype": "m.text", "body": body}
    return httpx.post(_url(hs, "check_event_for_spam"), json={"event": event}, headers=_auth(hs), timeout=30)


def _refused_with_reason(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["errcode"].startswith("M_"), body
    assert body["error"], body
    return body


@pytest.mark.parametrize(("callback", "body", "names"), MALFORMED)
def test_a_payload_of_the_wrong_shape_is_refused_naming_the_field(hearth_stack, callback, body, names):
    r = httpx.post(_url(hearth_stack, callback), json=body, headers=_auth(hearth_stack), timeout=10)
    assert names in _refused_with_reason(r, 400)["error"]


@pytest.mark.parametrize(
    "callback", ["check_event_for_spam", "user_may_join_room", "user_may_invite", "ping"]
)
@pytest.mark.parametrize(("what", "body"), NOT_AN_OBJECT, ids=[w for w, _ in NOT_AN_OBJECT])
def test_a_body_that_is_not_a_json_object_is_refused(hearth_stack, callback, what, body):
    r = httpx.post(_url(hearth_stack, callback), content=body, headers=_auth(hearth_stack), timeout=30)
    _refused_with_reason(r, 400)


def test_a_huge_body_is_refused_before_it_is_read_whole(hearth_stack):
    hs = hearth_stack
    big = {"event": {**EVENT, "content": {"body": "a" * 400_000}}}
    _refused_with_reason(
        httpx.post(_url(hs, "check_event_for_spam"), json=big, headers=_auth(hs), timeout=30), 413
    )

    def chunks():  # no Content-Length: the limit holds on what is actually read
        for _ in range(64):
            yield b" " * 16_384

    r = httpx.post(_url(hs, "user_may_join_room"), content=chunks(), headers=_auth(hs), timeout=30)
    _refused_with_reason(r, 413)


@pytest.mark.parametrize("auth", [None, b"Bearer", b"Bearer wrong", b"bearer  x", "Bearer été".encode()])
def test_a_wrong_or_missing_secret_is_refused_before_the_body_is_read(hearth_stack, auth):
    hs = hearth_stack
    headers = {"Authorization": auth} if auth else {}
    for callback in ("check_event_for_spam", "user_may_join_room", "user_may_invite", "ping"):
        r = httpx.post(_url(hs, callback), content=b"[" * 50_000, headers=headers, timeout=10)
        assert _refused_with_reason(r, 401)["errcode"] == "M_UNAUTHORIZED"


def test_unknown_callbacks_do_not_grow_the_metrics(hearth_stack):
    hs = hearth_stack
    name = "made_up_" + secrets.token_hex(4)
    assert httpx.post(_url(hs, name), json={}, timeout=10).status_code == 401
    assert httpx.post(_url(hs, name), json={}, headers=_auth(hs), timeout=10).status_code == 404
    metrics = httpx.get(f"{hs.layout.hearth_url}/metrics", timeout=10).text
    assert name not in metrics
    assert re.search(r'hearth_gate_calls_total\{callback="unknown",outcome="unauthorized"\} [1-9]', metrics)
    assert re.search(r'hearth_gate_calls_total\{callback="[a-z_]+",outcome="malformed"\}', metrics)


def test_a_replayed_event_gets_the_same_answer_and_other_content_under_its_id_is_refused(hearth_stack):
    hs = hearth_stack
    room = hearth_room(hs, prefix="e2e-hostile-")
    sender = hs.member("replay").user_id

    def check(event_id: str, body: str) -> httpx.Response:
        return check_message(hs, room, sender, event_id, body)

    abusive, kind = f"$abuse-{secrets.token_hex(4)}", f"$kind-{secrets.token_hex(4)}"
    first = check(abusive, "go kill yourself")
    assert first.status_code == 403, first.text
    again = check(abusive, "go kill yourself")
    assert (again.status_code, again.json()) == (403, first.json())
    assert check(kind, "thank you all for listening tonight").status_code == 200
    assert check(kind, "thank you all for listening tonight").status_code == 200
    swapped = check(kind, "go kill yourself")  # an allowed ID cannot be reused to carry other words
    assert _refused_with_reason(swapped, 403)["org.hearth.reason"] == "replay_mismatch"
