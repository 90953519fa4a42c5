"""Crisis detector on the project-written evaluation set: per-tier recall and false-alert rate.

    .venv/bin/python bench/crisis_eval.py                 # rules + the shipped support model
    .venv/bin/python bench/crisis_eval.py --rules-only    # rules alone
    .venv/bin/python bench/crisis_eval.py --show-misses   # list misclassified cases (invented texts)

The set (bench/data/crisis_eval.toml, 2026-11, the project's earlier crisis set) is never used for
training, rules or thresholds; it predates the support model's corpus and is kept as a second,
smaller check beside the frozen evaluation set (bench/support_eval.py). Its tiers follow the old
scheme in places (passive ideation as moderate), so read "recall(>=tier)" rather than "exact".
Recall at a tier counts a labelled message as caught when the detector's tier is at least as high
(an imminent message called high is still escalated); exact recall requires the same tier.
A false alert is any tier above none on a message labelled none.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moderation.detectors.crisis import CrisisDetector  # noqa: E402
from moderation.detectors.support_model import SupportModel  # noqa: E402
from moderation.labels import TIER_RANK  # noqa: E402
from moderation.normalize import normalize  # noqa: E402

EVAL = Path(__file__).resolve().parent / "data" / "crisis_eval.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules-only", action="store_true")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()

    cases = tomllib.loads(EVAL.read_text(encoding="utf-8"))["cases"]
    t0 = time.perf_counter()
    if args.rules_only:
        det = CrisisDetector.from_files()
        mode = "rules only"
    else:
        model = SupportModel()
        det = CrisisDetector.from_files(model=model)
        mode = f"rules + {model.description}"
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = det.assess([normalize(c["text"]) for c in cases])
    run = time.perf_counter() - t0

    print(f"crisis eval: {len(cases)} messages, {mode}; load {load:.1f}s, assess {run * 1000:.0f} ms")
    print(f"{'tier':9} {'n':>4} {'recall(>=tier)':>15} {'exact':>7} {'any alert':>10}")
    for tier in ("imminent", "high", "moderate"):
        idx = [i for i, c in enumerate(cases) if c["tier"] == tier]
        at_least = sum(TIER_RANK[results[i].tier] >= TIER_RANK[tier] for i in idx)
        exact = sum(results[i].tier == tier for i in idx)
        alert = sum(results[i].tier != "none" for i in idx)
        n = len(idx)
        print(f"{tier:9} {n:>4} {at_least / n:>15.1%} {exact / n:>7.1%} {alert / n:>10.1%}")
    neg = [i for i, c in enumerate(cases) if c["tier"] == "none"]
    fa = sum(results[i].tier != "none" for i in neg)
    pos = [i for i, c in enumerate(cases) if c["tier"] != "none"]
    caught = sum(results[i].tier != "none" for i in pos)
    print(f"false-alert rate on {len(neg)} 'none' messages: {fa / len(neg):.1%} ({fa})")
    print(f"any-alert recall on {len(pos)} risk messages: {caught / len(pos):.1%}")
    if args.show_misses:
        for i, c in enumerate(cases):
            r = results[i]
            if r.tier != c["tier"]:
                print(
                    f"  [{i}] want {c['tier']:8} got {r.tier:8} p={r.learned_p} rules={r.rules} :: {c['text']}"
                )


if __name__ == "__main__":
    main()
