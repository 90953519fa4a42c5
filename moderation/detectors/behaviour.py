"""Behaviour detector: flood, repeats, mention spam, links and media from new members.

Pure: time is each message's ``sent_at`` (never a clock read) and per-member history lives in an
injected :class:`BehaviourStore` (in memory by default). The store keeps only timestamps and hashes
of normalised text, never the text itself.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from moderation.types import ScreenItem, Signal, Span

_LINK = re.compile(
    r"(?:https?://|www\.|matrix\.to/|\b[a-z0-9-]+\.(?:com|net|org|io|ru|xyz|ly|gg|me|co|app|link)\b)"
)
_MEDIA_TYPES = frozenset({"m.image", "m.video", "m.file", "m.audio", "m.sticker"})


@dataclass(frozen=True)
class BehaviourLimits:
    """Thresholds; ``policy.toml`` ``[behaviour]`` supplies them."""

    flood_messages: int = 8  # this many messages ...
    flood_seconds: float = 20.0  # ... within this many seconds is a flood
    repeat_count: int = 3  # the same normalised text this many times ...
    repeat_seconds: float = 300.0  # ... within this window is a repeat
    mention_limit: int = 5  # mentions in one message
    new_member_minutes: float = 60.0  # trust period after joining: no links or media


@dataclass(frozen=True)
class Seen:
    event_id: str
    at: datetime
    digest: str


class BehaviourStore(Protocol):
    """Recent activity per member. Implementations must be safe to call from several threads."""

    def record(self, sender: str, seen: Seen, keep_after: datetime) -> list[Seen]:
        """Add ``seen`` (once per event ID), forget entries older than ``keep_after`` and return the
        member's remaining entries, oldest first."""
        ...


class InMemoryBehaviourStore:
    """A process-local store: enough for one gate replica; swap in a shared one to scale out."""

    def __init__(self, max_per_member: int = 200):
        self._by_sender: dict[str, deque[Seen]] = {}
        self._lock = threading.Lock()
        self._max = max_per_member

    def record(self, sender: str, seen: Seen, keep_after: datetime) -> list[Seen]:
        with self._lock:
            q = self._by_sender.setdefault(sender, deque(maxlen=self._max))
            if not any(s.event_id == seen.event_id for s in q):
                q.append(seen)
            while q and q[0].at < keep_after:
                q.popleft()
            if not q:
                del self._by_sender[sender]
                return []
            return sorted(q, key=lambda s: s.at)


class BehaviourDetector:
    """Signals ``behaviour.flood``, ``behaviour.repeat``, ``behaviour.mentions``,
    ``behaviour.new_member_link``, ``behaviour.new_member_media`` and ``behaviour.remote_media``
    (media from a member whose account is on another homeserver: Hearth's moderators cannot remove
    what another server keeps, so the policy decides apart from the trust period)."""

    name = "behaviour"

    def __init__(self, limits: BehaviourLimits | None = None, store: BehaviourStore | None = None):
        self.limits = limits or BehaviourLimits()
        self.store = store if store is not None else InMemoryBehaviourStore()

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        return [self._one(item) for item in batch]

    def _one(self, item: ScreenItem) -> list[Signal]:
        lim, msg = self.limits, item.message
        now = msg.sent_at
        digest = hashlib.sha256(item.norm.text.encode()).hexdigest()[:16]
        window = max(lim.flood_seconds, lim.repeat_seconds)
        history = self.store.record(
            msg.sender, Seen(msg.event_id, now, digest), keep_after=now - timedelta(seconds=window)
        )
        out: list[Signal] = []
        recent = [s for s in history if now - timedelta(seconds=lim.flood_seconds) <= s.at <= now]
        if len(recent) >= lim.flood_messages:
            out.append(
                self._signal(
                    "flood", len(recent) / lim.flood_messages, f"{len(recent)} in {lim.flood_seconds:g}s"
                )
            )
        same = [
            s
            for s in history
            if s.digest == digest and now - timedelta(seconds=lim.repeat_seconds) <= s.at <= now
        ]
        if item.norm.text and len(same) >= lim.repeat_count:
            out.append(self._signal("repeat", len(same) / lim.repeat_count, f"{len(same)} repeats"))
        if msg.mentions >= lim.mention_limit:
            out.append(self._signal("mentions", msg.mentions / lim.mention_limit, f"{msg.mentions} mentions"))
        if msg.sender_remote and (msg.has_media or msg.msgtype in _MEDIA_TYPES):
            out.append(self._signal("remote_media", 1.0, "media from another homeserver"))
        joined = msg.sender_joined_at
        if joined is not None and now - joined < timedelta(minutes=lim.new_member_minutes):
            links = [item.norm.to_original(*m.span()) for m in _LINK.finditer(item.norm.text)]
            if links:
                out.append(self._signal("new_member_link", 1.0, "link in trust period", tuple(links)))
            if msg.has_media or msg.msgtype in _MEDIA_TYPES:
                out.append(self._signal("new_member_media", 1.0, "media in trust period"))
        return out

    @staticmethod
    def _signal(kind: str, ratio: float, rule: str, evidence: tuple[Span, ...] = ()) -> Signal:
        return Signal(
            detector="behaviour",
            label=f"behaviour.{kind}",
            score=min(1.0, ratio),
            evidence=evidence,
            rule=rule,
        )
