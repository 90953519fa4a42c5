"""How the rule lists do on development data: the project-written sentences and Davidson's TRAINING part.

    .venv/bin/python bench/rules_dev.py [--list identity_hate --list slurs] [--show]

Rules in config/moderation/rules.toml are written and checked here, never against HateCheck (which is
for evaluation only, bench/evaluate.py) nor against the Davidson held-out part (also evaluation). For
each group of bench/offline_scorer_project_set.py it prints the share of sentences the chosen lists
fire on: abusive groups should be high, every other group zero. Then the share of Davidson training
tweets per class (hate / offensive / neither) they fire on. ``--show`` prints the project sentences
wrongly hit and missed, and the Davidson `neither` tweets hit (development data, so they may be read).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.davidson import CLASS_NAMES, DAVIDSON_CSV, load_davidson, split_indices  # noqa: E402
from bench.offline_scorer_project_set import ABUSIVE_GROUPS, GROUPS  # noqa: E402
from moderation.detectors.rules import load_rules  # noqa: E402
from moderation.normalize import normalize  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="append", help="rule list names (default: identity_hate, slurs)")
    ap.add_argument("--show", action="store_true", help="print false hits and misses")
    args = ap.parse_args()
    names = args.list or ["identity_hate", "slurs"]
    lists = [rl for rl in load_rules() if rl.name in names]
    if len(lists) != len(names):
        sys.exit(f"unknown list in {names}; rules.toml has {[rl.name for rl in load_rules()]}")

    def fires(text: str) -> bool:
        norm = normalize(text).text
        return any(rl.hits(norm) for rl in lists)

    print(f"lists: {', '.join(names)}\n\nproject-written set (bench/offline_scorer_project_set.py):")
    for name, sentences, _ in GROUPS:
        hit = [s for s in sentences if fires(s)]
        abusive = name in ABUSIVE_GROUPS
        kind = "abusive" if abusive else "not abusive"
        print(
            f"  {name:28s}{kind:>12s}{len(hit):6d}/{len(sentences):<5d}{100 * len(hit) / len(sentences):6.1f}%"
        )
        if args.show:
            shown = [s for s in sentences if not fires(s)] if abusive else hit
            for s in shown:
                print(f"      {'missed' if abusive else 'HIT'}: {s}")
    if not DAVIDSON_CSV.is_file():
        print(f"\n{DAVIDSON_CSV} not found; Davidson part skipped")
        return
    tweets = load_davidson()
    train, _ = split_indices(tweets)
    hits: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for i in train:
        total[tweets[i].cls] += 1
        if fires(tweets[i].text):
            hits[tweets[i].cls] += 1
            if args.show and tweets[i].cls == 2:
                print(f"      neither HIT: {tweets[i].text[:140]}")
    print(f"\nDavidson training part ({len(train)} tweets; the held-out part is not read):")
    for cls, label in CLASS_NAMES.items():
        print(f"  {label:10s} fired on {100 * hits[cls] / total[cls]:5.1f}%  (n={total[cls]})")


if __name__ == "__main__":
    main()
