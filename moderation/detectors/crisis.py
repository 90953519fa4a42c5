"""Crisis detector: risk tier (imminent | high | moderate | none) and category for each message.

Three readings of every message; the highest tier wins:

- the learned model (:class:`~moderation.detectors.support_model.SupportModel`, MiniLM fine-tuned on
  the project's corpus): the message's tier and category at the thresholds its card sets; it may say
  any tier, imminent included;
- explainable rules (``config/moderation/crisis.toml``), reviewable and extended by clinicians: phrase
  patterns with a tier and category, combinations (means + timeline -> imminent, ...) and suppressors
  for negation, quotes of abuse suffered, figures of speech, the past, grief and education. They are
  a floor for known high-precision phrasing and give the evidence spans;
- conversation context: the same member's recent messages in the same room (``[context]`` in
  ``crisis.toml``: a window of minutes and a number of messages) are read together with this one by
  the learned model, so "I've made up my mind." / "Tonight." / "Goodbye all, thank you for
  everything" is imminent although no single message is. The recent messages are kept in memory by a
  :class:`ContextStore` for that window only (never written anywhere, never logged).

Signals carry ``detector="crisis"``, ``label="crisis.<category>"``, the tier, a score and evidence
spans; ``rule`` says what raised it (rule names, ``learned`` or ``context``). A crisis signal never
blocks: the policy escalates and offers resources. A message below the alert whose reading by the
learned model alone is still close to it carries ``crisis.possible`` instead (no tier: nothing is
escalated), with the model's P(tier >= moderate) and most likely category.
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from moderation.errors import ConfigError, line_of
from moderation.labels import CATEGORIES, CONTEXT_JOIN, TIER_RANK, TIERS
from moderation.types import NormalizedText, ScreenItem, Signal, Span

if TYPE_CHECKING:
    from moderation.detectors.support_model import Scores, SupportModel

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "moderation"
DEFAULT_RULES = CONFIG_DIR / "crisis.toml"

TIER_SCORE = {"moderate": 0.7, "high": 0.85, "imminent": 0.97}
POSSIBLE = "crisis.possible"
POSSIBLE_FLOOR = 0.5
"""The learned model's P(tier >= moderate) from which a message below the alert carries
``crisis.possible`` (the policy decides what it changes)."""
_CLAUSE = re.compile(r"[.!?;]+\s*|\s+but\s+|\s+however\s+|\s+although\s+")


@dataclass(frozen=True)
class CrisisRule:
    name: str
    group: str
    tier: str
    category: str
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Combination:
    when: tuple[str, ...]
    tier: str
    category: str | None


@dataclass(frozen=True)
class Suppressor:
    kind: str
    scope: str  # overlap | clause
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class ContextWindow:
    """How much of a member's recent talk in a room is read together with a new message."""

    minutes: float = 10.0
    messages: int = 5  # earlier messages at most (the newest ones within the window)


@dataclass(frozen=True)
class CrisisConfig:
    rules: tuple[CrisisRule, ...]
    combinations: tuple[Combination, ...]
    suppressors: tuple[Suppressor, ...]
    context: ContextWindow = field(default_factory=ContextWindow)


@dataclass
class Assessment:
    """The detector's reasoning for one message: useful in tests and for explanations."""

    tier: str = "none"
    category: str | None = None
    score: float = 0.0
    rules: list[str] = field(default_factory=list)
    evidence: list[tuple[int, int]] = field(default_factory=list)  # in normalised text
    suppressed: list[str] = field(default_factory=list)  # "<rule> by <suppressor kind>"
    learned_p: float | None = None  # the model's P(tier >= moderate) for this message alone
    learned_tier: str | None = None  # the model's tier for this message alone
    learned_category: str | None = None  # the model's most likely category for this message alone
    context_tier: str | None = None  # the model's tier for this message read with the member's recent ones
    context_messages: int = 0  # how many earlier messages were read with it


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: {exc}", line=getattr(exc, "lineno", None)) from exc


def _patterns(raw: object, path: Path, text: str, where: str, after: int) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        raise ConfigError(path, f"{where}: patterns must be a non-empty list of strings", line=after or None)
    out = []
    for p in raw:
        try:
            out.append(re.compile(p))
        except re.error as exc:
            raise ConfigError(
                path, f"{where}: bad regex {p!r}: {exc}", line=line_of(text, p, after=after) or after or None
            ) from exc
    return tuple(out)


def load_crisis_config(path: Path | str = DEFAULT_RULES) -> CrisisConfig:
    """Parse ``crisis.toml``; invalid entries raise :class:`ConfigError` with file, line and reason."""
    path = Path(path)
    text, data = _read_toml(path)
    rules = []
    groups: set[str] = set()
    after = 0
    for entry in data.get("rule", []):
        name = str(entry.get("name", ""))
        after = line_of(text, f'"{name}"', after=after) or after
        tier, category, group = entry.get("tier"), entry.get("category"), entry.get("group")
        if not name or not isinstance(group, str) or not group:
            raise ConfigError(path, "every [[rule]] needs a name and a group", line=after or None)
        if tier not in TIERS:
            raise ConfigError(path, f"rule {name!r}: tier must be one of {TIERS}", line=after or None)
        if category not in CATEGORIES:
            raise ConfigError(
                path, f"rule {name!r}: category must be one of {CATEGORIES}", line=after or None
            )
        groups.add(group)
        rules.append(
            CrisisRule(name, group, tier, category, _patterns(entry.get("patterns"), path, text, name, after))
        )
    if not rules:
        raise ConfigError(path, "no [[rule]] tables")
    combos = []
    for entry in data.get("combine", []):
        when = tuple(entry.get("when", ()))
        unknown = [g for g in when if g not in groups]
        if not when or unknown or entry.get("tier") not in TIERS[1:]:
            raise ConfigError(
                path, f"combine {list(when)}: unknown groups {unknown} or bad tier", key="combine"
            )
        cat = entry.get("category")
        if cat is not None and cat not in CATEGORIES:
            raise ConfigError(path, f"combine {list(when)}: unknown category {cat!r}", key="combine")
        combos.append(Combination(when, entry["tier"], cat))
    sups = []
    for kind, entry in data.get("suppress", {}).items():
        scope = entry.get("scope")
        if scope not in ("overlap", "clause"):
            raise ConfigError(path, "scope must be 'overlap' or 'clause'", key=f"suppress.{kind}.scope")
        after_s = line_of(text, f"[suppress.{kind}]") or 0
        sups.append(
            Suppressor(kind, scope, _patterns(entry.get("patterns"), path, text, f"suppress.{kind}", after_s))
        )
    if "learned" in data:
        raise ConfigError(
            path,
            "the learned crisis component is the support model now (its thresholds are in its card); "
            "remove [learned]",
            key="learned",
        )
    ctx = data.get("context", {})
    if not isinstance(ctx, dict) or set(ctx) - {"window_minutes", "messages"}:
        raise ConfigError(path, "[context] takes window_minutes and messages", key="context")
    minutes = ctx.get("window_minutes", 10)
    count = ctx.get("messages", 5)
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or not 0 <= minutes <= 120:
        raise ConfigError(path, "must be a number of minutes from 0 to 120", key="context.window_minutes")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 20:
        raise ConfigError(path, "must be a whole number from 0 to 20", key="context.messages")
    return CrisisConfig(tuple(rules), tuple(combos), tuple(sups), ContextWindow(float(minutes), count))


@dataclass(frozen=True)
class Recent:
    """One earlier message of a member in a room, kept for the context window only."""

    event_id: str
    at: datetime
    text: str  # normalised text


class ContextStore(Protocol):
    """A member's recent messages per room, for reading them together. Safe to call from threads."""

    def record(self, key: tuple[str, str], recent: Recent, window: ContextWindow) -> list[Recent]:
        """Add ``recent`` (once per event ID), forget what is older than the window before it, and
        return the earlier messages still in the window (at most ``window.messages``, oldest first)."""
        ...


class InMemoryContextStore:
    """Process memory only, bounded: nothing older than the window survives the next message, and a
    sweep forgets members who have gone quiet (:meth:`sweep`, also run every ``sweep_every`` records)."""

    def __init__(self, max_members: int = 50_000, sweep_every: int = 1000):
        self._by_key: dict[tuple[str, str], deque[Recent]] = {}
        self._lock = threading.Lock()
        self._max_members = max_members
        self._sweep_every = sweep_every
        self._records = 0
        self._window = timedelta(minutes=10)

    def record(self, key: tuple[str, str], recent: Recent, window: ContextWindow) -> list[Recent]:
        span = timedelta(minutes=window.minutes)
        with self._lock:
            self._window = span
            q = self._by_key.get(key)
            if q is None:
                if len(self._by_key) >= self._max_members:
                    self._sweep(recent.at)
                q = self._by_key[key] = deque(maxlen=max(1, window.messages + 1))
            earlier = [
                r for r in q if r.event_id != recent.event_id and recent.at - span <= r.at <= recent.at
            ]
            if all(r.event_id != recent.event_id for r in q):
                q.append(recent)
            while q and q[0].at < recent.at - span:
                q.popleft()
            self._records += 1
            if self._records % self._sweep_every == 0:
                self._sweep(recent.at)
        earlier.sort(key=lambda r: r.at)
        return earlier[-window.messages :] if window.messages else []

    def sweep(self, now: datetime) -> int:
        """Forget every member whose newest message is older than the window; returns how many."""
        with self._lock:
            return self._sweep(now)

    def _sweep(self, now: datetime) -> int:
        stale = [k for k, q in self._by_key.items() if not q or q[-1].at < now - self._window]
        for k in stale:
            del self._by_key[k]
        while len(self._by_key) >= self._max_members:  # still full: the quietest go first
            oldest = min(self._by_key, key=lambda k: self._by_key[k][-1].at)
            del self._by_key[oldest]
            stale.append(oldest)
        return len(stale)

    def __len__(self) -> int:
        return len(self._by_key)


class CrisisDetector:
    """Risk tier and category per message: the learned model, the explainable rules, and context."""

    name = "crisis"

    def __init__(
        self,
        config: CrisisConfig,
        model: SupportModel | None = None,
        context: ContextStore | None = None,
    ):
        self.config = config
        self.model = model
        self.context = context if context is not None else InMemoryContextStore()

    @classmethod
    def from_files(
        cls,
        rules: Path | str = DEFAULT_RULES,
        model: SupportModel | None = None,
        context: ContextStore | None = None,
    ) -> CrisisDetector:
        """The rules from ``rules``; without ``model`` the detector is rules-only (no context either)."""
        return cls(load_crisis_config(rules), model, context)

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        contexts = [self._recent(item) for item in batch]
        return self._signals(batch, self.assess([item.norm for item in batch], contexts))

    def detect_rules(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        """The explainable rules alone (regular expressions, no model): cheap enough to run before
        the batched models, so a clinician can be alerted without waiting for them."""
        return self._signals(batch, [self._rules(item.norm.text)[0] for item in batch])

    def _recent(self, item: ScreenItem) -> list[str]:
        """Record this message in the member's context and return the earlier ones still in the window."""
        if self.model is None or self.config.context.messages == 0 or self.config.context.minutes == 0:
            return []
        msg = item.message
        earlier = self.context.record(
            (str(msg.room_id), str(msg.sender)),
            Recent(str(msg.event_id), msg.sent_at, item.norm.text),
            self.config.context,
        )
        return [r.text for r in earlier if r.text.strip()]

    def _signals(self, batch: Sequence[ScreenItem], assessments: Sequence[Assessment]) -> list[list[Signal]]:
        out: list[list[Signal]] = []
        for item, a in zip(batch, assessments, strict=True):
            if a.tier == "none" or a.category is None:
                out.append(_possible(a))
                continue
            spans: list[Span] = []
            for s, e in a.evidence:
                span = item.norm.to_original(s, e)
                if span not in spans:
                    spans.append(span)
            out.append(
                [
                    Signal(
                        detector="crisis",
                        label=f"crisis.{a.category}",
                        score=round(a.score, 4),
                        evidence=tuple(spans),
                        rule=",".join(a.rules),
                        tier=a.tier,
                        category=a.category,
                    )
                ]
            )
        return out

    def assess(
        self, norms: Sequence[NormalizedText], contexts: Sequence[Sequence[str]] | None = None
    ) -> list[Assessment]:
        """The reasoning behind each message's tier: rules fired and suppressed, the model's reading
        of the message alone and (with ``contexts``, the member's earlier messages) read together."""
        results = [self._rules(n.text)[0] for n in norms]
        if self.model is None:
            return results
        contexts = contexts or [[] for _ in norms]
        joined = [CONTEXT_JOIN.join([*c, n.text]) for n, c in zip(norms, contexts, strict=True) if c]
        scores = self.model.predict([n.text for n in norms] + joined)
        single, together = scores[: len(norms)], iter(scores[len(norms) :])
        for a, n, c, s in zip(results, norms, contexts, single, strict=True):
            self._apply_learned(a, s, len(n.text), context=False)
            if c:
                a.context_messages = len(c)
                self._apply_learned(a, next(together), len(n.text), context=True)
        return results

    def _apply_learned(self, a: Assessment, s: Scores, length: int, *, context: bool) -> None:
        assert self.model is not None
        th = self.model.thresholds
        tier = th.tier(s.tier)
        if context:
            a.context_tier = tier
        else:
            a.learned_p = round(s.p_alert, 4)
            a.learned_tier = tier
            a.learned_category = s.top("category")[0]
        if TIER_RANK[tier] <= TIER_RANK[a.tier]:
            return
        a.tier = tier
        a.category = s.top("category")[0]
        a.score = float(s.tier[TIER_RANK[tier] :].sum())
        a.rules = ["context" if context else "learned"]
        a.evidence = [(0, length)] if length else []

    def _rules(self, text: str) -> tuple[Assessment, bool]:
        """Rule hits after suppression; the flag says whether any suppressor matched at all."""
        a = Assessment()
        sup_spans = {
            s.kind: (s.scope, [m.span() for p in s.patterns for m in p.finditer(text)])
            for s in self.config.suppressors
        }
        any_suppressor = any(spans for _, spans in sup_spans.values())
        clauses = _clauses(text)
        surviving: dict[str, list[tuple[CrisisRule, int, int]]] = {}
        for rule in self.config.rules:
            for pat in rule.patterns:
                for m in pat.finditer(text):
                    s, e = m.span()
                    if s == e:
                        continue
                    by = _suppressed_by(s, e, sup_spans, clauses)
                    if by:
                        a.suppressed.append(f"{rule.name} by {by}")
                        continue
                    surviving.setdefault(rule.group, []).append((rule, s, e))
        # candidates: (tier rank, category, rule names, spans); combinations first so they name the category
        candidates: list[tuple[int, str, list[str], list[tuple[int, int]]]] = []
        for combo in self.config.combinations:
            if all(g in surviving for g in combo.when):
                hits = [h for g in combo.when for h in surviving[g]]
                category = combo.category or surviving[combo.when[0]][0][0].category
                names = [f"combine({'+'.join(combo.when)})", *sorted({r.name for r, _, _ in hits})]
                candidates.append((TIER_RANK[combo.tier], category, names, [(s, e) for _, s, e in hits]))
        for hits in surviving.values():
            for rule, s, e in hits:
                candidates.append((TIER_RANK[rule.tier], rule.category, [rule.name], [(s, e)]))
        top = max((c[0] for c in candidates), default=0)
        if top > 0:
            chosen = [c for c in candidates if c[0] == top]
            a.tier = TIERS[top]
            a.category = chosen[0][1]
            same = [c for c in chosen if c[1] == a.category]
            a.rules = list(dict.fromkeys(n for c in same for n in c[2]))
            a.evidence = sorted({sp for c in same for sp in c[3]})
            a.score = TIER_SCORE[a.tier]
        return a, any_suppressor


def _possible(a: Assessment) -> list[Signal]:
    """Below the alert, a reading of possible risk: ``crisis.possible`` with the model's P(tier >=
    moderate) for the message alone, when it is at least :data:`POSSIBLE_FLOOR`. It raises no alert
    (no tier); the policy reads it before refusing a message on a model's harm reading alone."""
    if a.learned_p is None or a.learned_p < POSSIBLE_FLOOR:
        return []
    return [
        Signal(
            detector="crisis",
            label=POSSIBLE,
            score=a.learned_p,
            rule="learned",
            category=a.learned_category,
        )
    ]


def _clauses(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each clause: text between sentence ends and "but" / "however"."""
    out: list[tuple[int, int]] = []
    pos = 0
    for m in _CLAUSE.finditer(text):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(text)))
    return out


def _suppressed_by(
    s: int, e: int, sups: dict[str, tuple[str, list[tuple[int, int]]]], clauses: list[tuple[int, int]]
) -> str | None:
    clause = next(((cs, ce) for cs, ce in clauses if cs <= s < ce), (s, e))
    for kind, (scope, spans) in sups.items():
        for ss, se in spans:
            if scope == "overlap" and ss < e and s < se:
                return kind
            if scope == "clause" and ss < clause[1] and clause[0] < se:
                return kind
    return None
