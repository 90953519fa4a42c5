"""Screening: the moderation pipeline at the gate (before delivery) and after delivery.

At the gate, ``check_event_for_spam`` for an ``m.room.message`` in one of Hearth's rooms is screened
through a micro-batcher (model inference batched across concurrent requests, off the event loop)
within the gate's budget. The decision is stored, keyed by event ID, before the gate answers, so the
bot never screens the same event twice. Past the budget the gate allows and stores nothing: the bot
re-screens the delivered message and redacts it if the full verdict blocks.

After delivery the bot carries out what cannot happen at the gate: warn the sender privately, mute
with expiry, send crisis resources, raise an escalation, flag for human review, redact.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Set
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge.batcher import BatcherClosed, MicroBatcher
from bridge.clock import Clock
from bridge.db import unavailable
from bridge.gate import Answer, Check, reject
from bridge.gateway import TimelineEvent
from bridge.metrics import Metrics
from bridge.models import RoomMember
from bridge.tasks import TaskGroup
from config.ids import EventID, RoomID, UserID, server_of
from config.settings import Settings
from moderation import store
from moderation.casework import ActiveMute
from moderation.detectors.support_model import SupportModel
from moderation.detectors.toxicity import load_toxicity_detector
from moderation.escalation.port import EscalationPort
from moderation.labels import TIER_RANK
from moderation.models import ModerationDecision
from moderation.normalize import scrub_surrogates
from moderation.pipeline import Pipeline
from moderation.trust import MentionLimit, mention_refusal
from moderation.types import Disposition, Message, Signal, Span, Verdict
from spaces.models import ProvisionedRoom

log = logging.getLogger(__name__)

MEDIA_TYPES = frozenset({"m.image", "m.file", "m.video", "m.audio"})
PILL = re.compile(r"https://matrix\.to/#/@")
AT_ROOM = re.compile(r"(?<![\w@])@room\b")
ROOM_CACHE_SECONDS = 30.0
DISPOSITION_FIELDS = frozenset(f.name for f in fields(Disposition))
# How many of the gate's answers are remembered to answer a replayed call the same way.
REPLAY_MEMORY = 4096


def _content_digest(event: dict[str, Any]) -> str:
    """What identifies an event's screened content: room, sender, type and content, canonical JSON."""
    what = {k: event.get(k) for k in ("room_id", "sender", "type", "content")}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class RoomInfo:
    room_id: RoomID
    space: str
    profile: str


class RoomDirectory:
    """Which rooms are Hearth's, with their moderation profile; cached, reloaded from the catalogue."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._rooms: dict[str, RoomInfo] = {}
        self._loaded_at = -1e9
        self._lock = asyncio.Lock()

    def _load(self) -> dict[str, RoomInfo]:
        with Session(self.engine) as s:
            rows = s.exec(select(ProvisionedRoom)).all()
        return {r.room_id: RoomInfo(RoomID(r.room_id), r.space_slug, r.profile) for r in rows}

    async def get(self, room_id: str) -> RoomInfo | None:
        loop = asyncio.get_running_loop()
        if room_id not in self._rooms or loop.time() - self._loaded_at > ROOM_CACHE_SECONDS:
            async with self._lock:
                if room_id not in self._rooms or loop.time() - self._loaded_at > ROOM_CACHE_SECONDS:
                    self._rooms = await asyncio.to_thread(self._load)
                    self._loaded_at = loop.time()
        return self._rooms.get(room_id)

    def invalidate(self) -> None:
        self._loaded_at = -1e9


class JoinTimes:
    """When members joined Hearth's rooms (the ``room_member`` rows the bot records), cached.

    The behaviour detector needs the sender's join time for every message; reading it from the
    database on the gate's hot path costs a thread hop and a query per message. A join time does not
    change while the member stays, so it is read once and kept (least recently used first out); the
    bot forgets a member's entry whenever it records a membership change for them, and unknown
    members are not cached (their join may be recorded a moment later).
    """

    def __init__(self, engine: Engine, size: int = 50_000):
        self.engine = engine
        self.size = size
        self._known: OrderedDict[tuple[str, str], datetime] = OrderedDict()

    def _read(self, room_id: str, user_id: str) -> datetime | None:
        with Session(self.engine) as s:
            row = s.get(RoomMember, (room_id, user_id))
            return store._utc(row.joined_at) if row else None

    async def get(self, room_id: str, user_id: str) -> datetime | None:
        key = (room_id, user_id)
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        joined = await asyncio.to_thread(self._read, room_id, user_id)
        if joined is not None:
            self._known[key] = joined
            while len(self._known) > self.size:
                self._known.popitem(last=False)
        return joined

    def forget(self, room_id: str, user_id: str) -> None:
        self._known.pop((room_id, user_id), None)


def mention_count(content: dict[str, Any]) -> int:
    mentions = content.get("m.mentions")
    ids = mentions.get("user_ids") if isinstance(mentions, dict) else None
    if isinstance(ids, list):
        return len(ids)
    formatted = content.get("formatted_body")
    return len(PILL.findall(formatted)) if isinstance(formatted, str) else 0


def mentions_room(content: dict[str, Any]) -> bool:
    """Whether a message mentions the whole room: ``m.mentions.room``, or, from a client that sends
    no ``m.mentions``, ``@room`` in its text (the legacy push rule)."""
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict):
        return mentions.get("room") is True
    return AT_ROOM.search(str(content.get("body", ""))) is not None


def message_from_event(
    event: dict[str, Any],
    room: RoomInfo,
    sent_at: datetime,
    joined_at: datetime | None,
    home_server: str | None = None,
) -> Message | None:
    """The pipeline's view of a Matrix message event, or None if it carries nothing to screen."""
    content = event.get("content")
    if event.get("type") != "m.room.message" or not isinstance(content, dict):
        return None
    relates = content.get("m.relates_to")
    if (
        isinstance(relates, dict)
        and relates.get("rel_type") == "m.replace"
        and isinstance(content.get("m.new_content"), dict)
    ):
        content = {**content, **content["m.new_content"]}  # an edit is screened as its new text
    body = content.get("body")
    if not isinstance(body, str):
        return None
    body = scrub_surrogates(body)  # nothing downstream (database, models) can store or read them
    formatted = content.get("formatted_body") if content.get("format") == "org.matrix.custom.html" else None
    if isinstance(formatted, str):
        formatted = scrub_surrogates(formatted)
    msgtype = str(content.get("msgtype", "m.text"))
    return Message(
        event_id=EventID(str(event.get("event_id", ""))),
        room_id=room.room_id,
        sender=UserID(str(event.get("sender", ""))),
        body=body,
        sent_at=sent_at,
        formatted_body=formatted if isinstance(formatted, str) else None,
        msgtype=msgtype,
        profile=room.profile,
        space=room.space,
        sender_joined_at=joined_at,
        mentions=mention_count(content),
        has_media=msgtype in MEDIA_TYPES,
        mentions_room=mentions_room(content),
        sender_remote=home_server is not None and server_of(str(event.get("sender", ""))) != home_server,
    )


class MuteCheck(Protocol):
    """What the gate asks of ``bridge.moderators.sanctions.Sanctions``."""

    def muted(self, user: str, space: str | None) -> ActiveMute | None: ...

    async def muted_notice(self, mute: ActiveMute, space: str | None) -> str: ...


class WelcomeCheck(Protocol):
    """What the gate asks of ``bridge.welcome.Welcome``."""

    def pending(self, user: str, space: str | None) -> bool: ...

    def pending_notice(self, space: str) -> str: ...


class HoldDesk(Protocol):
    """Where refused-and-flagged messages go (``bridge.moderators.desk.ModerationDesk.flag``)."""

    async def flag(self, message: Message, reason: str, signals: list[str], *, held: bool = False) -> Any: ...


# (message, verdict, delivered_unscreened): the last is True when the gate let it through unscreened.
AfterDelivery = Callable[..., Awaitable[None]]


def load_pipeline(settings: Settings) -> tuple[Pipeline, str]:
    """Build the full pipeline from settings (slow: loads model weights; call it in a thread)."""
    cfg = settings.moderation
    detector, description = load_toxicity_detector(
        cfg.toxicity_checkpoint or None,
        log,
        quantize=cfg.quantize,
        runtime=cfg.toxicity_runtime,
        cache_dir=settings.effective_model_cache_dir,
    )
    model: SupportModel | None = None
    if cfg.crisis_learned:
        model = SupportModel()
        log.info("support model active (crisis tier and category, harm, target): %s", model.description)
        description = f"{description}; support model: {model.description}"
    else:
        log.warning(
            "support model disabled (moderation.crisis_learned = false): crisis detection is rules only"
        )
        description = f"{description}; support model disabled, crisis rules only"
    pipeline = Pipeline.from_config(cfg.config_dir, extra=[detector], model=model, learned=cfg.crisis_learned)
    return pipeline, description


def invite_checks(settings: Settings, staff: Set[str]) -> tuple[Check, Check]:
    """Who may invite, for ``user_may_invite`` and for invites that arrive as events.

    The bot and staff may always invite; members of Hearth's own server only if the policy allows,
    so newcomers get no unsolicited private messages from strangers; users of other servers never:
    neither Hearth's members into their rooms (Synapse asks ``user_may_invite`` for an invite that
    comes over federation) nor anyone into rooms on Hearth's server. The second check covers the
    latter: a remote member's invite reaches Hearth's server as an ``m.room.member`` event, which
    Synapse only shows to ``check_event_for_spam`` and soft-fails when refused, so the invite never
    takes effect on Hearth's server. The inviter's own server has already accepted it, though, so
    the lasting barrier is the rooms' power levels (``invite`` 50: group rooms and members' private
    rooms with the bot), which every server enforces."""
    bot = settings.matrix.bot_user_id
    home = server_of(bot)
    allow_members = settings.moderation.allow_member_invites

    def decide(inviter: object) -> Answer | None:
        if inviter == bot or inviter in staff:
            return None
        if not isinstance(inviter, str) or server_of(inviter) != home:
            return reject(
                "Hearth doesn't accept invitations from other servers, so nobody here gets messages "
                "they didn't ask for. You can talk in the group rooms.",
                "invite_policy.remote",
            )
        if allow_members:
            return None
        return reject(
            "Members can't invite other members here, so nobody gets messages they didn't ask for. "
            "You can talk in the group rooms, or ask a moderator to help you connect.",
            "invite_policy",
        )

    async def user_may_invite(payload: dict[str, Any]) -> Answer | None:
        return decide(payload.get("inviter"))

    async def invite_event(payload: dict[str, Any]) -> Answer | None:
        event = payload.get("event")
        if not isinstance(event, dict) or event.get("type") != "m.room.member":
            return None
        content = event.get("content")
        if not isinstance(content, dict) or content.get("membership") != "invite":
            return None
        return decide(event.get("sender"))

    return user_may_invite, invite_event


class Screening:
    """Owns the pipeline (loaded off the loop at start-up) and its batcher."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        metrics: Metrics,
        bot_user: str,
        budget_ms: int,
        load_pipeline: Callable[[], tuple[Pipeline, str]],
        max_batch: int = 32,
        max_wait_ms: float = 4.0,
        *,
        escalations: EscalationPort | None = None,
        tasks: TaskGroup | None = None,
        sanctions: MuteCheck | None = None,
        moderators: HoldDesk | None = None,
        explain: Callable[[str, str], Coroutine[Any, Any, None]] | None = None,
        welcome: WelcomeCheck | None = None,
        new_member_mentions: int | None = None,
        staff: Set[str] = frozenset(),
        withdraw: Callable[[Message], Coroutine[Any, Any, None]] | None = None,
    ):
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.bot_user = bot_user
        self.budget = budget_ms / 1000
        self._load_pipeline = load_pipeline
        self.rooms = RoomDirectory(engine)
        self.joins = JoinTimes(engine)
        self.pipeline: Pipeline | None = None
        self.description = "loading"
        self.load_error: str | None = None
        self.reload_error: str | None = None  # the last reload's refusal, until one succeeds
        self.ready = asyncio.Event()  # the pipeline is loaded and batching
        self.loaded = asyncio.Event()  # loading has finished, successfully or not (see load_error)
        self.batcher: MicroBatcher[Message, Verdict] = MicroBatcher(
            self._screen_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, name="screening"
        )
        self.after_delivery: AfterDelivery | None = None
        # When the gate's verdict escalates, the clinician is alerted (as a kept background task)
        # without waiting for the message to come back through the bot's sync.
        self.escalations = escalations
        self.tasks = tasks or TaskGroup()
        # Moderators' mutes are enforced here (never on a message read as crisis).
        self.sanctions = sanctions
        self.moderators = moderators
        # A refused member also hears why in their private room (clients may hide the error text).
        self.explain = explain
        self.welcome = welcome
        # New members' trust period also limits mentions (moderation/trust.py); None: no limit.
        self.new_member_mentions = new_member_mentions
        self.staff = staff
        # The gate's recent answers by event ID, with a digest of what was screened (see gate_check).
        self._answered: OrderedDict[str, tuple[str, Answer | None]] = OrderedDict()
        # A remote member's refused message is redacted too (their own server still shows it).
        self.withdraw = withdraw
        self.server_name = server_of(bot_user)

    # --- life cycle ---

    async def start(self) -> None:
        """Load the pipeline in a thread (model weights take seconds), then start batching."""
        try:
            self.pipeline, self.description = await asyncio.to_thread(self._load_pipeline)
            await self.batcher.start()
            self.ready.set()
            log.info("moderation pipeline ready: %s", self.description)
        except Exception as e:  # the service keeps running (fail-open at the gate, health says why)
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("moderation pipeline failed to load")
        finally:
            self.loaded.set()

    async def close(self) -> None:
        await self.batcher.close()

    async def reload(self, config_dir: str | Path) -> str | None:
        """Read the policy and rules files again. A broken file changes nothing: the running policy
        and rules stay, and the refusal (file, key, reason) is logged, kept for /healthz and returned."""
        if self.pipeline is None:
            return "the pipeline has not loaded yet"
        try:
            fresh = await asyncio.to_thread(self.pipeline.reloaded, config_dir)
        except (ValueError, OSError) as e:  # ConfigError is a ValueError; an unreadable file an OSError
            self.reload_error = str(e)
            log.error("reload refused, the running policy and rules stay: %s", e)
            return self.reload_error
        self.pipeline = fresh
        self.reload_error = None
        log.info("policy and rules reloaded from %s", config_dir)
        return None

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.ready.is_set(),
            "toxicity": self.description,
            "error": self.load_error,
            "reload_error": self.reload_error,
            "batches": self.batcher.batches,
            "messages": self.batcher.items,
        }

    def _screen_batch(self, messages: list[Message]) -> list[Verdict]:
        assert self.pipeline is not None
        return self.pipeline.screen(messages)

    # --- shared ---

    async def _message(self, event: dict[str, Any]) -> Message | None:
        if event.get("sender") == self.bot_user or event.get("type") != "m.room.message":
            return None
        room = await self.rooms.get(str(event.get("room_id", "")))
        if room is None:
            return None  # not one of Hearth's rooms
        sender = str(event.get("sender", ""))
        joined = await self.joins.get(room.room_id, sender)
        now = self.clock.now()
        if joined is None and server_of(sender) != self.server_name:
            # A remote member's join reaches the bot a moment after their server sent it (their first
            # message can come first): until it is recorded they are as new as can be.
            joined = now
        return message_from_event(event, room, now, joined, self.server_name)

    async def _save(self, message: Message, verdict: Verdict, source: str) -> None:
        now = self.clock.now()

        def write() -> None:
            with Session(self.engine) as s:
                store.save_decision(s, message, verdict, now=now, source=source)
                s.commit()

        await asyncio.to_thread(write)

    def _observe(self, verdict: Verdict, where: str) -> None:
        for stage, seconds in verdict.timings.items():
            self.metrics.stage_seconds.labels(stage=stage).observe(seconds)
        kinds = {d.kind for d in verdict.dispositions}
        for kind in kinds:
            self.metrics.verdicts.labels(where=where, disposition=kind).inc()

    # --- before delivery ---

    async def gate_check(self, payload: dict[str, Any]) -> Answer | None:
        """``check_event_for_spam``: screen within the budget; None lets the event through.

        A replayed call (an event ID answered recently, same content) gets the same answer without
        being screened, escalated, held or explained again; the same ID with other content is refused.
        """
        event = payload.get("event")
        if not isinstance(event, dict):
            return None
        message = await self._message(event)
        if message is None:
            return None
        digest = _content_digest(event)
        seen = self._answered.get(message.event_id)
        if seen is not None:
            if seen[0] != digest:
                log.warning("gate: event %s replayed with other content; refused", message.event_id)
                return reject("This message could not be checked.", "replay_mismatch")
            return seen[1]
        answer = await self._gate_check(message)
        self._answered[message.event_id] = (digest, answer)
        while len(self._answered) > REPLAY_MEMORY:
            self._answered.popitem(last=False)
        return answer

    async def _gate_check(self, message: Message) -> Answer | None:
        if not self.ready.is_set():
            self.metrics.gate_fallbacks.labels(reason="not_ready").inc()
            return None  # fail open; the bot screens it after delivery once the pipeline is ready
        assert self.pipeline is not None
        fast = self.pipeline.fast_crisis(message)  # regular expressions only: microseconds, on the loop
        if fast is not None:
            self._raise(message, fast)  # the clinician is alerted before the models have even run
        try:
            verdict = await asyncio.wait_for(self.batcher.submit(message), self.budget)
        except TimeoutError:
            self.metrics.gate_fallbacks.labels(reason="budget").inc()
            log.warning("gate budget passed for %s; allowing, the bot will re-screen it", message.event_id)
            return None
        except (BatcherClosed, Exception) as e:  # the pipeline itself failed: re-screen after delivery
            self.metrics.gate_fallbacks.labels(reason="error").inc()
            log.error("gate screening failed for %s: %s", message.event_id, type(e).__name__)
            return None
        try:
            await self._save(message, verdict, "gate")
        except Exception as e:
            reason = unavailable(e)
            if reason is None:
                raise
            # Nothing stored: a delivered message is screened again by the bot once the database is
            # back (its sync loop waits for it); a refused one is still refused.
            self.metrics.gate_fallbacks.labels(reason="database").inc()
            log.warning("gate could not store the decision for %s: %s", message.event_id, reason)
        self._observe(verdict, "gate")
        if fast is None or _rank(verdict) > _rank(fast):
            self._raise(message, verdict)
        block = verdict.of_kind("block")
        if block:
            d = block[0]
            self._hold(message, verdict)
            return self._refuse(
                message,
                d.message or "Your message wasn't sent because it breaks this space's guidelines.",
                d.reason,
            )
        if self.sanctions is not None and fast is None and not verdict.of_kind("escalate"):
            mute = self.sanctions.muted(message.sender, message.space)
            if mute is not None:
                return self._refuse(message, await self.sanctions.muted_notice(mute, message.space), "muted")
        if (
            self.welcome is not None
            and fast is None
            and not verdict.of_kind("escalate")
            and self.welcome.pending(message.sender, message.space)
        ):
            notice = self.welcome.pending_notice(message.space or "")
            if server_of(message.sender) != self.server_name:
                # Another server's member never sees the refusal (their server took the message): it
                # is withdrawn there and they are told privately, as for any refusal.
                return self._refuse(message, notice, "welcome")
            return reject(notice, "welcome")
        if fast is None and not verdict.of_kind("escalate"):
            refusal = self._trust_refusal(message)
            if refusal is not None:
                return self._refuse(message, refusal, "new_member_mentions")
        return None

    def _trust_refusal(self, message: Message) -> str | None:
        if self.new_member_mentions is None or self.pipeline is None or message.sender in self.staff:
            return None
        minutes = self.pipeline.policy.behaviour.new_member_minutes
        return mention_refusal(message, MentionLimit(self.new_member_mentions, minutes))

    def _refuse(self, message: Message, text: str, reason: str) -> Answer:
        if self.explain is not None:
            self.tasks.create(self.explain(message.sender, text), name=f"explain-{message.event_id}")
        if self.withdraw is not None and server_of(message.sender) != self.server_name:
            # Federated: Synapse soft-fails what the gate refuses, but the sender's server has it.
            self.tasks.create(self.withdraw(message), name=f"withdraw-{message.event_id}")
        return reject(text, reason)

    def _hold(self, message: Message, verdict: Verdict) -> None:
        """A refused message the policy also flags reaches the moderators (the bot never sees it)."""
        flags = verdict.of_kind("flag")
        if self.moderators is not None and flags and not verdict.of_kind("escalate"):
            reason = "; ".join(d.reason for d in flags)
            self.tasks.create(
                self.moderators.flag(message, reason, [d.reason for d in flags], held=True),
                name=f"hold-{message.event_id}",
            )

    def _raise(self, message: Message, verdict: Verdict) -> None:
        if self.escalations is not None and verdict.of_kind("escalate"):
            self.tasks.create(
                self.escalations.raise_for(message, verdict), name=f"escalate-{message.event_id}"
            )

    # --- after delivery ---

    async def on_event(self, ev: TimelineEvent) -> None:
        """Bot handler: record joins; carry out (or first decide) what happens to delivered messages."""
        event = {**ev.event, "room_id": ev.room_id}
        if ev.type == "m.room.member":
            await self._record_membership(event)
            return
        message = await self._message(event)
        if message is None:
            return

        def load() -> ModerationDecision | None:
            with Session(self.engine) as s:
                return store.get_decision(s, message.event_id)

        decision = await asyncio.to_thread(load)
        if decision is not None and decision.acted_at is not None:
            return  # already carried out (a replayed sync after a crash)
        if decision is None:
            await self.loaded.wait()
            if self.load_error is not None:
                # No pipeline to screen with: a person reviews it (never silently through).
                verdict = Verdict(message.event_id, [Disposition("flag", "pipeline_unavailable")])
                if self.after_delivery is not None:
                    await self.after_delivery(message, verdict, delivered_unscreened=False)
                return
            verdict = await self.batcher.submit(message)
            await self._save(message, verdict, "rescreen")
            self._observe(verdict, "rescreen")
        else:
            verdict = verdict_from_decision(decision)
        if self.after_delivery is not None:
            await self.after_delivery(message, verdict, delivered_unscreened=decision is None)
        now = self.clock.now()

        def done() -> None:
            with Session(self.engine) as s:
                store.mark_acted(s, message.event_id, now=now)
                s.commit()

        await asyncio.to_thread(done)

    async def _record_membership(self, event: dict[str, Any]) -> None:
        content = event.get("content") or {}
        user = str(event.get("state_key", ""))
        ts = event.get("origin_server_ts")
        joined_at = (
            self.clock.now()
            # Another server sets its own events' timestamps: a remote member's trust period starts
            # when Hearth learns of the join, never at a time their server claims.
            if not isinstance(ts, int) or server_of(user) != self.server_name
            else datetime.fromtimestamp(ts / 1000, self.clock.now().tzinfo)
        )
        membership = content.get("membership") if isinstance(content, dict) else None

        def write() -> None:
            with Session(self.engine) as s:
                row = s.get(RoomMember, (event["room_id"], user))
                if membership == "join" and row is None:
                    s.add(RoomMember(room_id=event["room_id"], user_id=user, joined_at=joined_at))
                elif membership in ("leave", "ban") and row is not None:
                    s.delete(row)
                s.commit()

        await asyncio.to_thread(write)
        self.joins.forget(event["room_id"], user)


def _rank(verdict: Verdict) -> int:
    """The tier a verdict escalates at (0 when it does not)."""
    return max((TIER_RANK.get(d.tier or "none", 0) for d in verdict.of_kind("escalate")), default=0)


def verdict_from_decision(row: ModerationDecision) -> Verdict:
    """The stored decision as a Verdict again (signals without evidence text; none is stored)."""
    dispositions = [
        Disposition(**{k: v for k, v in d.items() if k in DISPOSITION_FIELDS}) for d in row.dispositions
    ]
    signals = [
        Signal(
            detector=s["detector"],
            label=s["label"],
            score=float(s["score"]),
            rule=s.get("rule"),
            tier=s.get("tier"),
            category=s.get("category"),
            action=s.get("action"),
            evidence=tuple(Span(a, b) for a, b in s.get("spans", [])),
        )
        for s in row.signals
    ]
    return Verdict(EventID(row.event_id), dispositions, signals, dict(row.timings), dict(row.errors))
