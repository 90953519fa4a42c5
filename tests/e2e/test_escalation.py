"""Crisis escalation end to end: real Synapse, real Hearth service, real database (issue 5).

Until the moderation pipeline raises escalations from messages, these tests commit escalations with
the domain's own ``raise_escalation`` straight into the service's database (exactly what
``EscalationDesk.raise_for`` commits) and let the notifier find them by polling: the outbox path
from there on (delivery, acknowledgement, re-paging, crash recovery) is the production one.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from bridge import stack
from bridge.escalation.render import staff_alert_content
from bridge.escalation.webhooks import verify_webhook
from moderation.escalation import (
    WEBHOOK_SIGNATURE_HEADER,
    Escalation,
    EscalationAudit,
    Notification,
    SlaPolicy,
    raise_escalation,
    resolve,
)
from tests.e2e.conftest import resolve_open_escalations
from tests.e2e.escalation_staff import (
    ADMIN,
    BACKUP,
    CLINICIAN,
    IMMINENT_SLA_SECONDS,
    MODERATOR,
    WEBHOOK_SECRET,
    join_private_room_with_the_bot,
    join_staff_room,
    sign_in,
    staff_room,
    staff_user,
)
from tests.e2e.matrix import User, q, wait_for

pytestmark = pytest.mark.e2e

SLA = SlaPolicy(imminent=IMMINENT_SLA_SECONDS)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _close_escalations_afterwards(hearth_stack) -> Iterator[None]:
    """Later modules share this stack: close what this module opened, so its re-pages stop."""
    yield
    resolve_open_escalations(hearth_stack)


def crisis_message(hs) -> tuple[User, str, str]:
    """A member, a room of theirs and a real message event in it."""
    member = hs.member()
    room = member.create_room(name="check-in", preset="private_chat")
    return member, room, member.say(room, "a message the detector found concerning")


def commit_escalation(
    hs, member: User, room: str, event_id: str, *, severity: str = "high", category: str = "ideation"
) -> str:
    """Commit an escalation with its outbox rows, as ``EscalationDesk.raise_for`` does."""
    with Session(hs.engine) as s:
        esc, created = raise_escalation(
            s,
            room_id=room,
            sender=member.user_id,
            event_id=event_id,
            severity=severity,
            category=category,
            signals=[{"detector": "crisis", "label": f"crisis.{category}", "score": 0.97}],
            excerpt="a message the detector found concerning",
            space="grief",
            locale="en-GB",
            now=datetime.now(UTC),
            sla=SLA,
            on_call=[CLINICIAN],
            webhook=True,
        )
        s.commit()
        assert created
        return esc.id


def escalation(hs, esc_id: str) -> Escalation:
    with Session(hs.engine) as s:
        row = s.get(Escalation, esc_id)
        assert row is not None
        return row


def notifications(hs, esc_id: str) -> list[Notification]:
    with Session(hs.engine) as s:
        return list(s.exec(select(Notification).where(Notification.escalation_id == esc_id)).all())


def staff_events(hs, esc_id: str | None = None) -> list[dict[str, Any]]:
    """Events in the staff room (oldest first), optionally only those about ``esc_id``."""
    evs = list(reversed(hs.bot().messages(staff_room(hs), limit=300)))
    if esc_id is None:
        return evs
    return [e for e in evs if (e.get("content") or {}).get("org.hearth.escalation", {}).get("id") == esc_id]


def alerts(hs, esc_id: str) -> list[dict[str, Any]]:
    """The alert notices (not edits, not re-pages) of an escalation."""
    return [
        e
        for e in staff_events(hs, esc_id)
        if e["type"] == "m.room.message" and "m.relates_to" not in e["content"]
    ]


def edits(hs, esc_id: str, alert_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in staff_events(hs, esc_id)
        if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
        and e["content"]["m.relates_to"]["event_id"] == alert_id
    ]


def replies_to(hs, event_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in staff_events(hs)
        if ((e["content"].get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id") == event_id
    ]


def one_alert(hs, esc_id: str) -> dict[str, Any]:
    evs = wait_for(lambda: alerts(hs, esc_id), timeout=30, what=f"the staff alert of {esc_id}")
    return evs[0]


def react(user: User, room: str, event_id: str, key: str = "✅") -> str:
    return user.send(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}},
        event_type="m.reaction",
    )


def command(hs, user: User, text: str) -> str:
    """Send a staff-room command; returns the bot's reply text."""
    room = staff_room(hs)
    ev = user.say(room, text)
    reply = wait_for(lambda: replies_to(hs, ev), timeout=20, what=f"the bot's reply to {text!r}")
    return str(reply[0]["content"]["body"])


# --- delivery ---------------------------------------------------------------------------------


def test_an_escalation_produces_exactly_one_alert_and_a_private_message(hearth_stack):
    hs = hearth_stack
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id, severity="imminent", category="plan")

    alert = one_alert(hs, esc_id)
    content = alert["content"]
    assert alert["sender"] == hs.layout.bot_user_id
    assert content["msgtype"] == "m.text"
    assert content["org.hearth.escalation"] == {
        "id": esc_id,
        "severity": "imminent",
        "category": "plan",
        "status": "open",
        "room_id": room,
        "event_id": event_id,
        "sender": member.user_id,
    }
    assert content["m.mentions"] == {"user_ids": [CLINICIAN]}
    assert "matrix.to" in content["formatted_body"]
    assert esc_id in content["body"]

    # The person is offered help privately: a DM invite from the bot with resources for their locale.
    dm = join_private_room_with_the_bot(member)
    msgs = [e for e in member.messages(dm) if e["type"] == "m.room.message"]
    assert len(msgs) == 1
    assert msgs[0]["sender"] == hs.layout.bot_user_id
    assert msgs[0]["content"]["org.hearth.resources"]["region"] == "GB"
    assert "116 123" in msgs[0]["content"]["body"]  # Samaritans

    time.sleep(3)  # a few more notifier rounds: still exactly one alert, everything marked sent
    assert len(alerts(hs, esc_id)) == 1
    sent = wait_for(
        lambda: all(n.status == "sent" for n in notifications(hs, esc_id) if n.kind != "webhook") or None,
        what="the outbox marked sent",
    )
    assert sent
    assert escalation(hs, esc_id).alert_event_id == alert["event_id"]


def test_the_alert_rings_the_on_call_clinician_under_default_push_rules(hearth_stack):
    """Synapse's default ``.m.rule.suppress_notices`` comes before ``.m.rule.is_user_mention``: an
    ``m.notice`` alert would never reach a clinician's phone. The alert (an ``m.text`` mentioning them)
    must be in their ``/notifications``, as a highlight."""
    hs = hearth_stack
    clinician = staff_user(hs, CLINICIAN)
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id, severity="imminent", category="plan")
    alert = one_alert(hs, esc_id)

    def notified() -> dict[str, Any] | None:
        notes = clinician.call("GET", "/_matrix/client/v3/notifications?limit=50")["notifications"]
        return next((n for n in notes if n["event"]["event_id"] == alert["event_id"]), None)

    note = wait_for(notified, timeout=10, what="the clinician's notification for the alert")
    assert "highlight" in [a.get("set_tweak") for a in note["actions"] if isinstance(a, dict)]


def test_resolved_excerpts_are_purged_on_schedule_and_the_audit_stays(hearth_stack):
    """The retention job (at start, then hourly) blanks the excerpt of a resolved escalation past
    ``excerpt_retention_days``; its audit trail stays, without text."""
    hs = hearth_stack
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id)
    with Session(hs.engine) as s:
        resolve(
            s,
            esc_id,
            actor=CLINICIAN,
            staff=[CLINICIAN],
            outcome="contacted",
            now=datetime.now(UTC),
            excerpt_retention=timedelta(0),
        )
        s.commit()
    assert escalation(hs, esc_id).excerpt
    stack.stop_hearth(hs.layout)
    stack.start_hearth(hs.layout)
    wait_for(lambda: escalation(hs, esc_id).excerpt == "", timeout=30, what="the excerpt purged")
    with Session(hs.engine) as s:
        trail = s.exec(select(EscalationAudit).where(EscalationAudit.escalation_id == esc_id)).all()
    actions = [a.transition for a in trail]
    assert "excerpt_purged" in actions
    assert "resolved" in actions
    assert all("concerning" not in (a.note or "") for a in trail)


def test_sigkill_after_commit_delivers_the_alert_exactly_once(hearth_stack):
    hs = hearth_stack
    staff_room(hs)
    member, room, event_id = crisis_message(hs)
    stack.stop_hearth(hs.layout, sig=signal.SIGKILL)  # dies with whatever it had in flight
    esc_id = commit_escalation(hs, member, room, event_id)  # committed; nothing delivered yet
    stack.start_hearth(hs.layout)

    alert = one_alert(hs, esc_id)
    wait_for(lambda: escalation(hs, esc_id).alert_event_id, what="the alert marked sent")
    time.sleep(3)
    assert [a["event_id"] for a in alerts(hs, esc_id)] == [alert["event_id"]]


def test_a_crash_between_sending_and_marking_sent_sends_nothing_twice(hearth_stack):
    hs = hearth_stack
    room_id = staff_room(hs)
    member, room, event_id = crisis_message(hs)
    stack.stop_hearth(hs.layout, sig=signal.SIGKILL)
    esc_id = commit_escalation(hs, member, room, event_id)
    # The service "had sent" the alert with its own device and the notification's txn_id, then died
    # before marking it sent: replay that send with the service's saved session.
    token = json.loads((hs.layout.root / "bot_session.json").read_text())["access_token"]
    with Session(hs.engine) as s:
        notif = s.exec(
            select(Notification).where(
                Notification.escalation_id == esc_id, Notification.kind == "staff_alert"
            )
        ).one()
        esc = s.get(Escalation, esc_id)
        assert esc is not None
        content = staff_alert_content(esc, mentions=notif.payload["mentions"])
    r = httpx.put(
        f"{hs.layout.hs_url}/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{q(notif.txn_id)}",
        json=content,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    first = r.json()["event_id"]
    stack.start_hearth(hs.layout)

    wait_for(lambda: escalation(hs, esc_id).alert_event_id, what="the alert marked sent after restart")
    assert escalation(hs, esc_id).alert_event_id == first  # the homeserver deduplicated the resend
    time.sleep(2)
    assert [a["event_id"] for a in alerts(hs, esc_id)] == [first]


# --- acknowledgement --------------------------------------------------------------------------


def test_a_clinician_reaction_acknowledges_and_edits_the_alert(hearth_stack):
    hs = hearth_stack
    clinician = staff_user(hs, CLINICIAN)
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id)
    alert = one_alert(hs, esc_id)

    react(clinician, staff_room(hs), alert["event_id"], "✅")
    wait_for(lambda: escalation(hs, esc_id).status == "acknowledged", what="the acknowledgement")
    assert escalation(hs, esc_id).acknowledged_by == CLINICIAN

    edit = wait_for(lambda: edits(hs, esc_id, alert["event_id"]), what="the status edit")[-1]
    new = edit["content"]["m.new_content"]
    assert new["org.hearth.escalation"]["status"] == "acknowledged"
    assert edit["content"]["org.hearth.escalation"]["status"] == "acknowledged"
    assert f"ACKNOWLEDGED by Test clinician on call ({CLINICIAN})" in new["body"]


def test_a_reaction_by_someone_who_is_not_a_clinician_does_not_acknowledge(hearth_stack):
    hs = hearth_stack
    stranger = hs.member("stranger")
    moderator = staff_user(hs, MODERATOR)
    room_id = join_staff_room(hs, stranger)
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id)
    alert = one_alert(hs, esc_id)

    reaction = react(stranger, room_id, alert["event_id"], "✅")
    refusal = wait_for(lambda: replies_to(hs, reaction), what="the refusal")[0]["content"]
    assert "not listed as Hearth staff" in refusal["body"]
    assert refusal["m.mentions"] == {"user_ids": [stranger.user_id]}

    reaction = react(moderator, room_id, alert["event_id"], "👍")
    refusal = wait_for(lambda: replies_to(hs, reaction), what="the refusal")[0]["content"]
    assert "only clinicians" in refusal["body"]

    assert escalation(hs, esc_id).status == "open"
    assert edits(hs, esc_id, alert["event_id"]) == []


def test_an_unacknowledged_imminent_escalation_repages_after_its_sla(hearth_stack):
    hs = hearth_stack
    clinician = staff_user(hs, CLINICIAN)
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id, severity="imminent", category="attempt")
    alert = one_alert(hs, esc_id)
    assert escalation(hs, esc_id).status == "open"

    repage = wait_for(
        lambda: replies_to(hs, alert["event_id"]), timeout=IMMINENT_SLA_SECONDS + 15, what="the re-page"
    )[0]
    content = repage["content"]
    assert content["body"].startswith("Re-page #1")
    assert content["org.hearth.escalation"]["status"] == "repaged"
    # The backup rota (on call + fallback) and, for imminent, every clinician.
    assert set(content["m.mentions"]["user_ids"]) == {CLINICIAN, BACKUP}
    assert escalation(hs, esc_id).status == "repaged"

    reply = command(hs, clinician, f"!ack {esc_id.lower()}")
    assert f"{esc_id} acknowledged" in reply
    repages = escalation(hs, esc_id).repage_count
    time.sleep(IMMINENT_SLA_SECONDS + 2)
    assert escalation(hs, esc_id).repage_count == repages, "an acknowledged escalation kept re-paging"


def test_staff_room_commands(hearth_stack):
    hs = hearth_stack
    clinician = staff_user(hs, CLINICIAN)
    moderator = staff_user(hs, MODERATOR)
    stranger = hs.member("stranger")
    join_staff_room(hs, stranger)
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id)
    alert = one_alert(hs, esc_id)

    assert esc_id in command(hs, moderator, "!esc list")
    assert "not listed as Hearth staff" in command(hs, stranger, f"!ack {esc_id}")
    assert "only clinicians" in command(hs, moderator, f"!ack {esc_id}")
    assert "There is no escalation E-ZZZZZZ" in command(hs, clinician, "!ack E-ZZZZZZ")
    assert "Note added" in command(hs, moderator, f"!note {esc_id} called the member's named contact")
    assert "Unknown outcome" in command(hs, clinician, f"!resolve {esc_id} vanished")
    assert "resolved by" in command(hs, clinician, f"!resolve {esc_id} false-alarm checked with the member")
    assert "already resolved" in command(hs, clinician, f"!ack {esc_id}")

    row = escalation(hs, esc_id)
    assert (row.status, row.outcome, row.resolved_by) == ("resolved", "false_alarm", CLINICIAN)
    wait_for(
        lambda: any(
            e["content"]["m.new_content"]["org.hearth.escalation"]["status"] == "resolved"
            for e in edits(hs, esc_id, alert["event_id"])
        ),
        what="the resolved edit",
    )


# --- webhook ----------------------------------------------------------------------------------


@pytest.fixture
def webhook_inbox(hearth_stack) -> Iterator[list[tuple[dict[str, str], bytes]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's spelling
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hearth_stack.webhook_port), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_receives_a_signed_post(hearth_stack, webhook_inbox):
    hs = hearth_stack
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id)

    def mine() -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in webhook_inbox if json.loads(b)["escalation"]["id"] == esc_id]

    headers, body = wait_for(mine, timeout=30, what="the webhook POST")[0]
    payload = json.loads(body)
    assert payload["type"] == "escalation.opened"
    assert payload["id"] == headers["X-Hearth-Delivery"] == f"hearth.{esc_id}.webhook.0"
    assert verify_webhook(
        WEBHOOK_SECRET.encode(), body, headers[WEBHOOK_SIGNATURE_HEADER], now_ts=int(time.time())
    )
    assert not verify_webhook(
        b"wrong secret", body, headers[WEBHOOK_SIGNATURE_HEADER], now_ts=int(time.time())
    )
    assert "concerning" not in body.decode(), "the webhook must not carry message text"
    wait_for(
        lambda: all(n.status == "sent" for n in notifications(hs, esc_id) if n.kind == "webhook"),
        what="the webhook marked sent",
    )


# --- staff API --------------------------------------------------------------------------------


_SESSIONS: dict[tuple[str, str], str] = {}  # (Hearth URL, user) -> session token


def api(
    hs, method: str, path: str, actor: str | None = CLINICIAN, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    """The staff API as ``actor`` signed in with their Matrix identity (or with ``token``, or with nothing)."""
    if token is None and actor is not None:
        key = (hs.layout.hearth_url, actor)
        if key not in _SESSIONS:
            _SESSIONS[key] = sign_in(hs, actor)
        token = _SESSIONS[key]
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(
        method, f"{hs.layout.hearth_url}/api/escalations{path}", headers=headers, timeout=10, **kwargs
    )


def test_staff_api_lists_reads_and_acts_as_the_signed_in_clinician(hearth_stack):
    hs = hearth_stack
    member, room, event_id = crisis_message(hs)
    esc_id = commit_escalation(hs, member, room, event_id, severity="high", category="self_harm")

    r = api(hs, "GET", "", actor=None)
    assert r.status_code == 401
    assert "Sign in first" in r.json()["error"]
    assert api(hs, "GET", "", token="not-a-hearth-token").status_code == 401
    r = api(hs, "GET", "", actor=MODERATOR)
    assert r.status_code == 403  # case files are clinical: moderators never read them
    assert "signed in as moderator" in r.json()["error"]
    assert api(hs, "GET", f"/{esc_id}", actor=ADMIN).status_code == 403
    r = api(
        hs, "GET", "", actor=None, headers={"X-Hearth-Actor": CLINICIAN}
    )  # a self-declared actor is nobody
    assert r.status_code == 401

    listed = api(hs, "GET", "", params={"room_id": room}).json()["escalations"]
    assert [e["id"] for e in listed] == [esc_id]
    assert listed[0]["severity"] == "high"
    assert listed[0]["status"] == "open"
    ids = [
        e["id"]
        for e in api(hs, "GET", "", params={"status": ["open", "repaged"], "severity": "high"}).json()[
            "escalations"
        ]
    ]
    assert esc_id in ids
    assert api(hs, "GET", "", params={"room_id": room, "severity": "moderate"}).json()["escalations"] == []
    r = api(hs, "GET", "", params={"status": "closed"})
    assert r.status_code == 400
    assert "status" in r.json()["error"]

    one = api(hs, "GET", f"/{esc_id}").json()
    assert one["id"] == esc_id
    assert one["event_id"] == event_id
    assert [e["event_id"] for e in one["evidence"]] == [event_id]
    assert one["evidence"][0]["signals"][0]["label"] == "crisis.self_harm"
    assert [a["transition"] for a in one["audit"]] == ["opened"]
    assert one["conversation"]["state"] == "not_started"
    assert api(hs, "GET", "/E-ZZZZZZ").status_code == 404

    r = api(hs, "POST", f"/{esc_id}/acknowledge", actor=MODERATOR)
    assert r.status_code == 403
    r = api(hs, "POST", f"/{esc_id}/acknowledge", json={"note": "on it", "actor": BACKUP})
    assert r.status_code == 400  # nobody acts as someone else: there is no actor field
    r = api(hs, "POST", f"/{esc_id}/acknowledge", json={"note": "on it"})
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["acknowledged_by"]) == ("acknowledged", CLINICIAN)
    r = api(hs, "POST", f"/{esc_id}/acknowledge")
    assert r.status_code == 409
    assert "already acknowledged" in r.json()["error"]

    r = api(hs, "POST", f"/{esc_id}/notes", json={"text": "member replied in the DM"})
    assert r.status_code == 201
    assert r.json()["escalation_id"] == esc_id
    assert api(hs, "POST", f"/{esc_id}/notes", json={"text": ""}).status_code == 400

    r = api(hs, "POST", f"/{esc_id}/resolve", json={"outcome": "vanished"})
    assert r.status_code == 422
    assert "Unknown outcome" in r.json()["error"]
    assert api(hs, "POST", f"/{esc_id}/resolve", json={}).status_code == 400
    r = api(hs, "POST", f"/{esc_id}/resolve", actor=BACKUP, json={"outcome": "contacted"})
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["outcome"]) == ("resolved", "contacted")
    r = api(hs, "POST", f"/{esc_id}/resolve", json={"outcome": "contacted"})
    assert r.status_code == 409
    assert "already resolved" in r.json()["error"]

    trail = api(hs, "GET", f"/{esc_id}").json()
    assert [a["transition"] for a in trail["audit"]] == ["opened", "acknowledged", "note", "resolved"]
    assert [a["actor"] for a in trail["audit"][1:]] == [CLINICIAN, CLINICIAN, BACKUP]  # each by who signed in
    assert trail["resolved_by"] == BACKUP
