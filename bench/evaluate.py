"""Block decisions measured on public data: HateCheck (evaluation only) and the Davidson held-out split.

    .venv/bin/python bench/evaluate.py [--checkpoint DETOXIFY.ckpt] [--detector-only] [--profile support]

Mode:
- pipeline (default): the whole moderation pipeline's block decision, ``Pipeline.from_config`` with
  this toxicity detector added (normaliser -> rules, crisis, harm, behaviour, toxicity -> policy.toml),
  each case sent as a message from its own long-standing member in a room of ``--profile``;
- detector-only (fallback, or ``--detector-only``): the toxicity detector alone with one fixed rule
  chosen before looking at any HateCheck result: block when any of insult, threat, identity_attack or
  severe_toxicity >= 0.5 (abuse aimed at others; toxicity/obscene alone never block, so casual
  profanity passes). It is labelled as such in the output.

HateCheck (Röttger et al., ACL 2021, CC BY 4.0) is read from ../shared/data/hatecheck/ and is never
used to train, tune thresholds or write rules. Davidson: the held-out 20% of the fixed split in
bench/davidson.py, which the offline scorer never trained on.

Last, an overlap report: how many of the offline scorer's project-written training sentences
(bench/offline_scorer_project_set.py) equal a HateCheck case after folding case, punctuation and
whitespace, and how many have token Jaccard >= 0.8 with one (both should be about zero).
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.davidson import DAVIDSON_CSV, HATECHECK_CSV, load_davidson, split_indices  # noqa: E402
from config.ids import EventID, RoomID, UserID  # noqa: E402
from moderation.detectors.toxicity import ToxicityDetector, load_toxicity_detector  # noqa: E402
from moderation.normalize import normalize  # noqa: E402
from moderation.types import Message, ScreenItem  # noqa: E402

BLOCKING_LABELS = (
    "toxicity.insult",
    "toxicity.threat",
    "toxicity.identity_attack",
    "toxicity.severe_toxicity",
)
DETECTOR_ONLY_THRESHOLD = 0.5

ANCHORS = [  # measured on these HateCheck cases (issue 4): hateful pass %, non-hateful pass %
    ("Perspective API", 89.5, 48.2),
    ("BERT trained on Davidson", 75.5, 36.0),
    ("MiniLM-embedding head on Davidson", 72.0, 35.0),
    ("alt-profanity-check", 39.0, 54.0),
    ('"hateful" to everything', 100.0, 0.0),
]

Blocker = Callable[[list[str]], list[bool]]


def items_for(texts: list[str]) -> list[ScreenItem]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ScreenItem(
            message=Message(
                event_id=EventID(f"$eval{i}"),
                room_id=RoomID("!eval:hearth.test"),
                sender=UserID("@eval:hearth.test"),
                body=t,
                sent_at=now,
            ),
            norm=normalize(t),
        )
        for i, t in enumerate(texts)
    ]


def detector_only_blocker(detector: ToxicityDetector, batch: int = 64) -> Blocker:
    def block(texts: list[str]) -> list[bool]:
        out: list[bool] = []
        for start in range(0, len(texts), batch):
            for signals in detector.detect(items_for(texts[start : start + batch])):
                out.append(
                    any(s.label in BLOCKING_LABELS and s.score >= DETECTOR_ONLY_THRESHOLD for s in signals)
                )
        return out

    return block


def pipeline_blocker(profile: str, detector: ToxicityDetector) -> Blocker | None:
    """The whole pipeline (rules, crisis, behaviour, toxicity, policy from config/) as a blocker."""
    try:
        from moderation.pipeline import Pipeline
    except ImportError as exc:
        print(f"moderation.pipeline not importable ({exc}); falling back to detector-only")
        return None
    pipeline = Pipeline.from_config(extra=[detector])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    errors: dict[str, int] = defaultdict(int)

    def block(texts: list[str]) -> list[bool]:
        out: list[bool] = []
        for start in range(0, len(texts), 64):
            # one sender per message, members for a year: behaviour rules (flood, new-member
            # trust period) are not what this measures
            messages = [
                Message(
                    event_id=EventID(f"$eval{start + k}"),
                    room_id=RoomID("!eval:hearth.test"),
                    sender=UserID(f"@eval{start + k}:hearth.test"),
                    body=t,
                    sent_at=now + timedelta(seconds=start + k),
                    profile=profile,
                    sender_joined_at=now - timedelta(days=365),
                )
                for k, t in enumerate(texts[start : start + 64])
            ]
            for verdict in pipeline.screen(messages):
                out.append(verdict.blocked)
                for name in verdict.errors:
                    errors[name] += 1
        if errors:
            print(f"  detector errors (messages flagged for review): {dict(errors)}")
        return out

    return block


def hatecheck(block: Blocker) -> None:
    with HATECHECK_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [r["test_case"].strip() for r in rows]
    hateful = np.array([r["label_gold"] == "hateful" for r in rows])
    blocked = np.array(block(texts))
    passed = blocked == hateful  # a hateful case passes when blocked, a non-hateful one when allowed
    h, nh = passed[hateful].mean() * 100, passed[~hateful].mean() * 100
    print(
        f"\nHateCheck ({len(rows)} cases): hateful blocked {h:.1f}%  non-hateful allowed {nh:.1f}%  "
        f"balanced {(h + nh) / 2:.1f}%  (overall accuracy {passed.mean() * 100:.1f}%)"
    )
    print(f"{'':36s}{'hateful':>9s}{'non-hat.':>10s}{'balanced':>10s}")
    for name, ah, anh in ANCHORS:
        print(f"  anchor: {name:28s}{ah:8.1f}%{anh:9.1f}%{(ah + anh) / 2:9.1f}%")
    print(f"  {'this run':36s}{h:6.1f}%{nh:9.1f}%{(h + nh) / 2:9.1f}%")
    print("  aim (issue 15): balanced >= 75% with non-hateful >= 75%")
    by_func: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_func[r["functionality"]].append(i)
    print(f"\n{'functionality':28s}{'gold':>12s}{'n':>5s}{'pass':>8s}")
    for func in sorted(by_func, key=lambda k: (not k.endswith("_h"), k)):
        idx = by_func[func]
        print(f"{func:28s}{rows[idx[0]]['label_gold']:>12s}{len(idx):5d}{passed[idx].mean() * 100:7.1f}%")


def fold_text(text: str) -> str:
    """Lower-cased, punctuation turned to spaces, whitespace collapsed: what "exactly equal" means."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def overlap_report(texts: list[str], what: str, jaccard_limit: float = 0.8) -> None:
    """How close project-written training texts come to HateCheck's cases.

    Counts texts equal to a case after :func:`fold_text`, and those whose token sets have Jaccard
    similarity >= ``jaccard_limit`` with some case. Only the project's texts are printed, never
    HateCheck's cases; nothing here feeds back into training.
    """
    with HATECHECK_CSV.open(encoding="utf-8", newline="") as f:
        cases = [fold_text(r["test_case"]) for r in csv.DictReader(f)]
    case_set = set(cases)
    case_tokens = [frozenset(c.split()) for c in set(cases)]
    index: dict[str, list[int]] = defaultdict(list)
    for j, toks in enumerate(case_tokens):
        for tok in toks:
            index[tok].append(j)
    exact, near, best = [], [], 0.0
    for text in texts:
        folded = fold_text(text)
        if folded in case_set:
            exact.append(text)
        toks = frozenset(folded.split())
        candidates = {j for tok in toks for j in index.get(tok, ())}
        top = max((len(toks & case_tokens[j]) / len(toks | case_tokens[j]) for j in candidates), default=0.0)
        best = max(best, top)
        if top >= jaccard_limit:
            near.append(text)
    print(f"\nOverlap of {what} ({len(texts)} texts) with HateCheck:")
    print(f"  equal to a case (case, punctuation, whitespace folded): {len(exact)}")
    print(f"  token Jaccard >= {jaccard_limit} with some case:             {len(near)}")
    print(f"  highest token Jaccard with any case:                    {best:.2f}")
    for text in sorted(set(exact) | set(near)):
        print(f"    project text: {text!r}")


def training_overlap() -> None:
    """:func:`overlap_report` for each project-written training set: the offline scorer's sentences,
    every message of the support model's corpus and of the slices waiting for its next training run."""
    from bench.offline_scorer_project_set import GROUPS
    from bench.train_support_model import CORPUS
    from moderation.labels import data_files, load_labelled

    overlap_report(
        [t for _, sentences, _ in GROUPS for t in sentences], "the offline scorer's project-written set"
    )
    waiting = CORPUS.parent / "corpus_next"
    for folder, what in (
        (CORPUS, "the support model's corpus"),
        (waiting, f"{waiting.relative_to(ROOT)} (not trained on yet)"),
    ):
        if folder.is_dir():
            texts = [m for r in load_labelled(data_files(folder)) for m in r.messages]
            overlap_report(texts, f"every message of {what}")


def davidson(block: Blocker) -> None:
    tweets = load_davidson()
    _, held = split_indices(tweets)
    texts = [tweets[i].text for i in held]
    cls = np.array([tweets[i].cls for i in held])
    blocked = np.array(block(texts))
    print(f"\nDavidson held-out split ({len(held)} tweets, never trained on):")
    print(
        f"  recall on hate (blocked):        {blocked[cls == 0].mean() * 100:5.1f}%  (n={int((cls == 0).sum())})"
    )
    print(
        f"  false-block rate on neither:     {blocked[cls == 2].mean() * 100:5.1f}%  (n={int((cls == 2).sum())})"
    )
    print(
        f"  block rate on offensive:         {blocked[cls == 1].mean() * 100:5.1f}%  (n={int((cls == 1).sum())}; "
        "mostly casual profanity, reported apart)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="Detoxify checkpoint; default: the offline scorer")
    ap.add_argument("--profile", default="support", help="moderation profile for the pipeline mode")
    ap.add_argument("--detector-only", action="store_true")
    args = ap.parse_args()
    if not HATECHECK_CSV.is_file() or not DAVIDSON_CSV.is_file():
        print(f"public data not found under {HATECHECK_CSV.parents[1]}; skipping evaluation")
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    detector, description = load_toxicity_detector(args.checkpoint, logging.getLogger("evaluate"))
    block = None if args.detector_only else pipeline_blocker(args.profile, detector)
    if block is None:
        print(
            f"MODE: DETECTOR-ONLY ({description}); block when any of "
            f"{', '.join(BLOCKING_LABELS)} >= {DETECTOR_ONLY_THRESHOLD}. Not the pipeline's decision."
        )
        block = detector_only_blocker(detector)
    else:
        print(f"MODE: PIPELINE (profile {args.profile}; toxicity: {description})")
    hatecheck(block)
    davidson(block)
    training_overlap()


if __name__ == "__main__":
    main()
