"""Crisis detector: risk tier (imminent | high | moderate | none) and category for each message.

Two parts, both driven by files clinicians can review:

- explainable rules (``config/moderation/crisis.toml``): phrase patterns with a tier and category,
  combinations (means + timeline -> imminent, ...) and suppressors for negation, quotes of abuse
  suffered, figures of speech, the past, grief and education;
- a learned component (``config/moderation/crisis_examples.toml``): logistic regression over sentence
  embeddings, trained at load (deterministic, about a second with MiniLM). It only speaks when no rule
  hit survives and no suppressor matched, and never says more than ``learned.max_tier``.

The embedder is injected (:class:`Embedder`; by default :class:`~moderation.detectors.minilm.MiniLM`,
shared with the offline toxicity scorer when that runs), so tests can use a fast one. Signals carry
``detector="crisis"``, ``label="crisis.<category>"``, the tier, a score and evidence spans. A crisis
signal never blocks: the policy escalates and offers resources.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from moderation.detectors.minilm import MiniLM
from moderation.errors import ConfigError, line_of
from moderation.types import NormalizedText, ScreenItem, Signal, Span

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "moderation"
DEFAULT_RULES = CONFIG_DIR / "crisis.toml"
DEFAULT_EXAMPLES = CONFIG_DIR / "crisis_examples.toml"

TIERS = ("none", "moderate", "high", "imminent")
TIER_RANK = {t: i for i, t in enumerate(TIERS)}
CATEGORIES = (
    "ideation",
    "plan_or_means",
    "attempt_in_progress",
    "self_harm",
    "harm_to_others",
    "abuse_disclosure",
    "concern_for_other",
)
TIER_SCORE = {"moderate": 0.7, "high": 0.85, "imminent": 0.97}
_CLAUSE = re.compile(r"[.!?;]+\s*|\s+but\s+|\s+however\s+|\s+although\s+")


class Embedder(Protocol):
    """Turns texts into fixed-size vectors (rows L2-normalised)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class HashingEmbedder:
    """Character n-gram hashing vectors: instant, no weights. For tests and as a last-resort fallback."""

    def __init__(self, n_features: int = 2**11):
        from sklearn.feature_extraction.text import HashingVectorizer

        self._vec = HashingVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), n_features=n_features, alternate_sign=False, norm="l2"
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._vec.transform(list(texts)).toarray(), dtype=np.float32)


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
class CrisisConfig:
    rules: tuple[CrisisRule, ...]
    combinations: tuple[Combination, ...]
    suppressors: tuple[Suppressor, ...]
    alert_threshold: float = 0.6
    max_learned_tier: str = "high"
    max_false_alert: float = 0.05


@dataclass(frozen=True)
class Example:
    text: str
    tier: str
    category: str | None


@dataclass
class Assessment:
    """The detector's reasoning for one message: useful in tests and for explanations."""

    tier: str = "none"
    category: str | None = None
    score: float = 0.0
    rules: list[str] = field(default_factory=list)
    evidence: list[tuple[int, int]] = field(default_factory=list)  # in normalised text
    suppressed: list[str] = field(default_factory=list)  # "<rule> by <suppressor kind>"
    learned_p: float | None = None


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
    learned = data.get("learned", {})
    threshold = learned.get("alert_threshold", 0.6)
    max_tier = learned.get("max_tier", "high")
    if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise ConfigError(path, "must be a number in (0, 1]", key="learned.alert_threshold")
    if max_tier not in TIERS:
        raise ConfigError(path, f"must be one of {TIERS}", key="learned.max_tier")
    max_fa = learned.get("max_false_alert", 0.05)
    if not isinstance(max_fa, int | float) or not 0 <= max_fa < 1:
        raise ConfigError(path, "must be a number in [0, 1)", key="learned.max_false_alert")
    return CrisisConfig(tuple(rules), tuple(combos), tuple(sups), float(threshold), max_tier, float(max_fa))


def load_examples(path: Path | str = DEFAULT_EXAMPLES) -> list[Example]:
    """Training examples: ``[[examples]]`` tables with ``tier``, optional ``category`` and ``texts``."""
    path = Path(path)
    _, data = _read_toml(path)
    out: list[Example] = []
    for i, entry in enumerate(data.get("examples", [])):
        tier, cat, texts = entry.get("tier"), entry.get("category"), entry.get("texts")
        if (
            tier not in TIERS
            or (cat is not None and cat not in CATEGORIES)
            or (tier != "none" and cat is None)
        ):
            raise ConfigError(
                path, "needs a valid tier and (unless tier none) category", key=f"examples[{i}]"
            )
        if not isinstance(texts, list) or not texts:
            raise ConfigError(path, "texts must be a non-empty list", key=f"examples[{i}]")
        out.extend(Example(str(t), tier, cat) for t in texts)
    return out


class LearnedCrisisModel:
    """Logistic regressions over embeddings: P(tier) and, for risky messages, P(category)."""

    def __init__(self, embedder: Embedder, examples: Sequence[Example], max_false_alert: float = 0.05):
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        from moderation.normalize import normalize

        self.embedder = embedder
        texts = [normalize(e.text).text for e in examples]
        x = embedder.encode(texts)
        tiers = np.array([TIER_RANK[e.tier] for e in examples])
        self._tier = self._fit(x, tiers)
        risky = tiers > 0
        cats = np.array([e.category or "ideation" for e in examples])
        labels = np.unique(cats[risky])
        self._only_cat = str(labels[0]) if len(labels) == 1 else None
        self._cat = self._fit(x[risky], cats[risky]) if len(labels) > 1 else None
        # Alert threshold from the examples themselves (never from the evaluation set): out-of-fold
        # P(alert) of the 'none' examples, so at most ``max_false_alert`` of them would alert.
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        oof = cross_val_predict(self._fit(x, tiers, fit=False), x, tiers, cv=folds, method="predict_proba")
        none_col = list(np.unique(tiers)).index(0)
        p_alert_none = 1.0 - oof[tiers == 0, none_col]
        self.threshold = float(np.quantile(p_alert_none, 1.0 - max_false_alert)) if len(p_alert_none) else 0.5

    @staticmethod
    def _fit(x: np.ndarray, y: np.ndarray, fit: bool = True) -> Any:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=4.0, max_iter=2000)
        return model.fit(x, y) if fit else model

    def predict(self, texts: Sequence[str]) -> list[tuple[np.ndarray, str]]:
        """Per text: probabilities over :data:`TIERS` and the most likely category."""
        x = self.embedder.encode(texts)
        p = self._tier.predict_proba(x)
        full = np.zeros((len(texts), len(TIERS)))
        for j, cls in enumerate(self._tier.classes_):
            full[:, int(cls)] = p[:, j]
        cats = self._cat.predict(x) if self._cat is not None else [self._only_cat] * len(texts)
        return [(full[i], str(cats[i])) for i in range(len(texts))]


class CrisisDetector:
    """Risk tier and category per message, from explainable rules plus a learned component."""

    name = "crisis"

    def __init__(self, config: CrisisConfig, learned: LearnedCrisisModel | None = None):
        self.config = config
        self.learned = learned

    @classmethod
    def from_files(
        cls,
        rules: Path | str = DEFAULT_RULES,
        examples: Path | str | None = DEFAULT_EXAMPLES,
        embedder: Embedder | None = None,
    ) -> CrisisDetector:
        """Load the rules and train the learned part (MiniLM unless another ``embedder`` is given).
        ``examples=None`` gives a rules-only detector."""
        config = load_crisis_config(rules)
        learned = None
        if examples is not None:
            learned = LearnedCrisisModel(
                embedder or MiniLM(), load_examples(examples), config.max_false_alert
            )
        return cls(config, learned)

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        return self._signals(batch, self.assess([item.norm for item in batch]))

    def detect_rules(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        """The explainable rules alone (regular expressions, no model): cheap enough to run before
        the batched models, so a clinician can be alerted without waiting for them."""
        return self._signals(batch, [self._rules(item.norm.text)[0] for item in batch])

    def _signals(self, batch: Sequence[ScreenItem], assessments: Sequence[Assessment]) -> list[list[Signal]]:
        out: list[list[Signal]] = []
        for item, a in zip(batch, assessments, strict=True):
            if a.tier == "none" or a.category is None:
                out.append([])
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
                        rule=",".join(a.rules) if a.rules else "learned",
                        tier=a.tier,
                        category=a.category,
                    )
                ]
            )
        return out

    def assess(self, norms: Sequence[NormalizedText]) -> list[Assessment]:
        """The reasoning behind each message's tier (rules fired, suppressed, learned probability)."""
        results = [self._rules(n.text) for n in norms]
        if self.learned is not None:
            need = [i for i, (a, quiet) in enumerate(results) if a.tier == "none" and not quiet]
            if need:
                preds = self.learned.predict([norms[i].text for i in need])
                for i, (probs, cat) in zip(need, preds, strict=True):
                    self._apply_learned(results[i][0], probs, cat, len(norms[i].text))
        return [a for a, _ in results]

    def _apply_learned(self, a: Assessment, probs: np.ndarray, category: str, length: int) -> None:
        p_alert = float(probs[1:].sum())
        a.learned_p = p_alert
        assert self.learned is not None
        if p_alert < max(self.config.alert_threshold, self.learned.threshold):
            return
        cap = TIER_RANK[self.config.max_learned_tier]
        tier_idx = min(int(np.argmax(probs[1:])) + 1, cap)
        if tier_idx <= 0:
            return
        a.tier = TIERS[tier_idx]
        a.category = category
        a.score = p_alert
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
