"""Members' traffic for the fault tests and ``bench/faults.py``, and the ledger that checks it.

Everything is read back from the real processes: the decisions, escalations and outbox from Hearth's
database, the alerts from the staff room through Synapse's client API, the sync ledger (``seen_event``)
the bot keeps. Nothing is counted by the sender's own bookkeeping alone.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bridge.models import SeenEvent
from moderation.escalation import Escalation, Notification, SlaPolicy, raise_escalation
from moderation.models import ModerationDecision
from tests.e2e.matrix import MatrixError, User, q, wait_for

# Invented for these tests; each checked against the shipped pipeline (crisis: escalate imminent;
# ordinary: allow; abusive: block).
CRISIS = [
    "I've written the letters and tonight I'm going to end it",
    "I just swallowed all of my sleeping tablets",
    "I'm standing on the bridge and I'm going to jump now",
    "the rope is ready and nobody will stop me this time",
    "goodbye everyone, by morning I won't be here anymore",
]
ORDINARY = [
    "morning everyone, I managed six hours of sleep which is a record lately",
    "thank you for the kind words yesterday, they stayed with me",
    "does anyone have tips for getting through a long weekend alone?",
    "walked to the shop and back today without turning round, small steps",
    "the grounding exercise from Tuesday's session helped me on the bus",
    "my sister visited and we just watched films, it was nice",
]
ABUSIVE = [
    "kys, nobody here wants you, you worthless idiot",
    "go kill yourself you pathetic loser",
    "you are a disgusting waste of space and everyone here hates you",
]


@dataclass(frozen=True)
class Sent:
    event_id: str
    kind: str  # crisis | ordinary | abusive
    sender: str
    room_id: str
    at: float  # time.monotonic() when the homeserver accepted it


@dataclass
class Traffic:
    """Who says what where: one member per crisis message (escalations merge per person and room, so
    each crisis must be its own person to be counted as its own escalation), a few ordinary talkers."""

    room_id: str
    crisis_members: list[User]
    talkers: list[User]
    sent: list[Sent] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (kind, errcode) the gate refused
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def join(cls, hs: Any, room_id: str, crises: int, talkers: int) -> Traffic:
        crisis_members = [hs.member("crisis") for _ in range(crises)]
        chatty = [hs.member("talker") for _ in range(talkers)]
        for m in crisis_members + chatty:
            join(m, room_id)
        return cls(room_id, crisis_members, chatty)

    def plan(self, ordinary: int, abusive: int = 0, seed: int = 19) -> list[tuple[str, User, str]]:
        """Every crisis member's one message and ``ordinary`` + ``abusive`` talkers' messages, shuffled
        so crises fall anywhere in the stream. A talker never says the same thing twice and says at most
        ``len(ORDINARY)`` things (the behaviour detector would rightly refuse repeats and floods)."""
        n = len(self.talkers)
        assert ordinary <= n * len(ORDINARY), f"{ordinary} ordinary messages need more than {n} talkers"
        rng = random.Random(seed)
        items = [("crisis", m, CRISIS[i % len(CRISIS)]) for i, m in enumerate(self.crisis_members)]
        items += [("ordinary", self.talkers[i % n], ORDINARY[i // n]) for i in range(ordinary)]
        items += [("abusive", self.talkers[i % n], ABUSIVE[i % len(ABUSIVE)]) for i in range(abusive)]
        rng.shuffle(items)
        return items

    def send(self, kind: str, member: User, text: str) -> Sent | None:
        try:
            event_id = member.say(self.room_id, text)
        except MatrixError as e:  # refused at the gate (abuse): never delivered, nothing to follow up
            with self._lock:
                self.refused.append((kind, str(e.body.get("errcode"))))
            return None
        sent = Sent(event_id, kind, member.user_id, self.room_id, time.monotonic())
        with self._lock:
            self.sent.append(sent)
        return sent

    def send_all(
        self, items: list[tuple[str, User, str]], rate: float, allowed: threading.Semaphore | None = None
    ) -> None:
        """Send ``items`` at ``rate`` per second at most; with ``allowed``, each message also waits for
        a release of it (a fault test hands out the stream in chunks, one per fault, so that messages
        flow around every fault however long a restart takes)."""
        for kind, member, text in items:
            if allowed is not None:
                allowed.acquire()
            time.sleep(1 / rate)
            self.send(kind, member, text)

    def of(self, kind: str) -> list[Sent]:
        return [s for s in self.sent if s.kind == kind]


def join(member: User, room_id: str, attempts: int = 5) -> None:
    """Join, trying again while the gate does not answer in time: Synapse refuses a join it could not
    ask Hearth about (joins fail closed), which a machine as busy as these tests' can provoke."""
    for attempt in range(attempts):
        try:
            member.join(room_id)
            return
        except MatrixError as e:
            if e.status != 403 or "antispam" not in str(e.body.get("error")) or attempt == attempts - 1:
                raise
            time.sleep(2)


def commit_escalation(engine: Engine, room_id: str, sender: str, event_id: str) -> str:
    """Commit an escalation with its outbox rows for a message, as ``EscalationDesk.raise_for`` does
    (the row and its notifications in one transaction, nothing sent yet); returns its ID."""
    with Session(engine) as s:
        esc, _created = raise_escalation(
            s,
            room_id=room_id,
            sender=sender,
            event_id=event_id,
            severity="high",
            category="ideation",
            signals=[{"detector": "crisis", "label": "crisis.ideation", "score": 0.9}],
            excerpt="raised by a fault test",
            space="e2e-moderation",
            locale="en-GB",
            now=datetime.now(UTC),
            sla=SlaPolicy(high=3600),
            on_call=["@escclin1:localhost"],
            webhook=False,
        )
        s.commit()
        return esc.id


def staff_room_events(hs: Any, staff_room: str) -> list[dict[str, Any]]:
    """Every event of the staff room, paging back through the whole history (not just the newest)."""
    bot = hs.bot()
    events: list[dict[str, Any]] = []
    token = ""
    while True:
        page = bot.call(
            "GET",
            f"/_matrix/client/v3/rooms/{q(staff_room)}/messages?dir=b&limit=500"
            + (f"&from={q(token)}" if token else ""),
        )
        events += page.get("chunk", [])
        if not page.get("chunk") or not page.get("end"):
            return events
        token = page["end"]


def alerts_by_escalation(hs: Any, staff_room: str) -> Counter[str]:
    """How many alerts (not edits, not re-pages) the staff room holds for each escalation."""
    return Counter(
        e["content"]["org.hearth.escalation"]["id"]
        for e in staff_room_events(hs, staff_room)
        if e.get("type") == "m.room.message"
        and isinstance(e.get("content"), dict)
        and "org.hearth.escalation" in e["content"]
        and "m.relates_to" not in e["content"]
    )


@dataclass
class Ledger:
    """What Hearth's database says about the messages sent."""

    decisions: dict[str, ModerationDecision]
    seen: dict[str, SeenEvent]
    escalations: list[Escalation]
    notifications: list[Notification]

    @classmethod
    def read(cls, hs: Any, sent: list[Sent]) -> Ledger:
        ids = [s.event_id for s in sent]
        senders = sorted({s.sender for s in sent})
        with Session(hs.engine) as s:
            decisions = {
                d.event_id: d
                for d in s.exec(select(ModerationDecision).where(col(ModerationDecision.event_id).in_(ids)))
            }
            seen = {e.event_id: e for e in s.exec(select(SeenEvent).where(col(SeenEvent.event_id).in_(ids)))}
            escalations = list(s.exec(select(Escalation).where(col(Escalation.sender).in_(senders))))
            esc_ids = [e.id for e in escalations]
            notifications = list(
                s.exec(select(Notification).where(col(Notification.escalation_id).in_(esc_ids)))
            )
        return cls(decisions, seen, escalations, notifications)

    def unfinished(self, sent: list[Sent]) -> list[str]:
        """Messages not yet screened and acted on."""
        return [
            s.event_id for s in sent if (d := self.decisions.get(s.event_id)) is None or d.acted_at is None
        ]


def wait_until_settled(hs: Any, sent: list[Sent], timeout: float = 120) -> Ledger:
    """Wait until every message has been screened and acted on and is in the bot's sync ledger (which
    is written just after its batch is handled), and every escalation's alert is sent. On timeout the
    ledger as it is comes back, for :func:`check_exactly_once` to name what is missing."""

    def settled() -> Ledger | None:
        ledger = Ledger.read(hs, sent)
        if ledger.unfinished(sent) or any(s.event_id not in ledger.seen for s in sent):
            return None
        crisis_senders = {s.sender for s in sent if s.kind == "crisis"}
        escalated = {e.sender for e in ledger.escalations}
        if not crisis_senders <= escalated or any(e.alert_event_id is None for e in ledger.escalations):
            return None
        return ledger

    try:
        return wait_for(settled, timeout=timeout, interval=1, what="the messages to settle")
    except AssertionError:
        return Ledger.read(hs, sent)


@dataclass
class Counts:
    """The figures the issue asks for, from one run."""

    sent: int
    screened: int
    escalated: int
    alerts_delivered: int
    lost: int
    duplicated: int
    refused_at_gate: int = 0
    screened_at_gate: int = 0
    screened_after_delivery: int = 0
    replayed_to_handlers: int = 0

    def line(self) -> str:
        return (
            f"sent {self.sent} (+{self.refused_at_gate} refused at the gate), screened {self.screened} "
            f"({self.screened_at_gate} at the gate, {self.screened_after_delivery} after delivery), "
            f"escalated {self.escalated}, alerts delivered {self.alerts_delivered}, lost {self.lost}, "
            f"duplicated {self.duplicated}; events handed to the bot's handlers again after a crash: "
            f"{self.replayed_to_handlers}"
        )


def check_exactly_once(hs: Any, traffic: Traffic, staff_room: str, ledger: Ledger) -> Counts:
    """Assert nothing was lost or duplicated; return the counts.

    - screened: one decision per delivered message, carried out (``acted_at``);
    - no sync gap: every delivered message is in the bot's sync ledger;
    - each crisis message: exactly one escalation (its first event), one alert in the staff room, one
      alert and one crisis-resources message in the outbox; no escalation for anyone else."""
    sent = traffic.sent
    missing_decision = [s for s in sent if s.event_id not in ledger.decisions]
    not_acted = [
        s for s in sent if s.event_id in ledger.decisions and ledger.decisions[s.event_id].acted_at is None
    ]
    sync_gap = [s for s in sent if s.event_id not in ledger.seen]
    crises = traffic.of("crisis")
    by_sender = Counter(e.sender for e in ledger.escalations)
    alerts = alerts_by_escalation(hs, staff_room)
    outbox = Counter((n.escalation_id, n.kind) for n in ledger.notifications)
    lost = (
        [f"no decision: {s.kind} {s.event_id}" for s in missing_decision]
        + [f"not acted on: {s.kind} {s.event_id}" for s in not_acted]
        + [f"sync gap: {s.kind} {s.event_id}" for s in sync_gap]
        + [f"no escalation: {s.event_id}" for s in crises if by_sender[s.sender] == 0]
    )
    duplicated = [f"{n} escalations for {who}" for who, n in by_sender.items() if n > 1]
    crisis_senders = {s.sender for s in crises}
    wrong = [e.sender for e in ledger.escalations if e.sender not in crisis_senders]
    first_event = {s.sender: s.event_id for s in crises}
    for esc in ledger.escalations:
        if esc.sender in first_event and esc.first_event_id != first_event[esc.sender]:
            lost.append(f"escalation {esc.id} points at {esc.first_event_id}, not the crisis message")
        n_alerts = alerts[esc.id]
        if n_alerts == 0:
            lost.append(f"no alert in the staff room for {esc.id}")
        elif n_alerts > 1:
            duplicated.append(f"{n_alerts} alerts for {esc.id}")
        for kind in ("staff_alert", "member_resources"):
            if outbox[(esc.id, kind)] != 1:
                duplicated.append(f"{outbox[(esc.id, kind)]} {kind} rows for {esc.id}")
    assert not lost, f"lost: {lost}"
    assert not duplicated, f"duplicated: {duplicated}"
    assert not wrong, f"escalations for members who sent no crisis message: {wrong}"
    sources = Counter(ledger.decisions[s.event_id].source for s in sent)
    return Counts(
        sent=len(sent),
        screened=len([s for s in sent if s.event_id in ledger.decisions]),
        escalated=len(ledger.escalations),
        alerts_delivered=sum(min(alerts[e.id], 1) for e in ledger.escalations),
        lost=len(lost),
        duplicated=len(duplicated),
        refused_at_gate=len(traffic.refused),
        screened_at_gate=sources["gate"],
        screened_after_delivery=sources["rescreen"],
        replayed_to_handlers=sum(1 for s in sent if ledger.seen[s.event_id].times_seen > 1),
    )
