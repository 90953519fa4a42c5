"""How the explainable rules do on the TRAINING corpus: which rules fire where they should not.

    .venv/bin/python bench/rules_on_corpus.py [--show]

The crisis rules (config/moderation/crisis.toml) are a floor under the learned model: a rule hit can
raise a message's tier but the model can never lower it, so a rule that fires on messages without risk
makes false alerts the model cannot undo. The same goes for the blocking lists of
config/moderation/rules.toml. This prints, per rule, how often it fires on corpus records labelled
with no risk (tier none) or no harm, next to how often it fires on the records it is for. Rules are
written and pruned against this development data only, never against the frozen evaluation sets
(bench/data/frozen_eval, frozen_eval_2, frozen_eval_3) or HateCheck. ``--show`` prints the false hits (invented texts).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.ids import EventID, RoomID, UserID  # noqa: E402
from moderation.detectors.crisis import CrisisDetector  # noqa: E402
from moderation.detectors.rules import RulesDetector  # noqa: E402
from moderation.labels import (  # noqa: E402
    TIER_RANK,
    data_files,
    load_labelled,
)
from moderation.normalize import normalize  # noqa: E402
from moderation.policy import load_policy  # noqa: E402
from moderation.types import Message, ScreenItem  # noqa: E402

CORPUS = ROOT / "bench" / "data" / "corpus"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=CORPUS)
    ap.add_argument("--show", action="store_true")
    args = ap.parse_args()
    records = load_labelled(data_files(args.data))
    crisis = CrisisDetector.from_files()
    rules = RulesDetector.from_file()
    policy = load_policy()
    blocking = {lbl for lbl, r in policy.profiles["support"].labels.items() if "block" in r.actions}

    fires: dict[str, Counter[str]] = defaultdict(Counter)
    false_hits: dict[str, list[str]] = defaultdict(list)
    over = Counter[str]()
    for r in records:
        if r.is_conversation:  # labelled as a whole; a single message of it has no label of its own
            continue
        for text in r.messages:
            norm = normalize(text)
            [a] = crisis.assess([norm])
            if a.tier != "none":
                for name in a.rules:
                    ok = r.tier != "none"
                    fires[f"crisis:{name}"]["risk" if ok else "no risk"] += 1
                    if not ok:
                        false_hits[f"crisis:{name}"].append(text)
                if TIER_RANK[a.tier] > TIER_RANK[r.tier]:
                    over[f"{r.tier}->{a.tier}"] += 1
            msg = Message(EventID("$x"), RoomID("!r:x"), UserID("@u:x"), text, datetime.now(UTC))
            for sig in rules.detect([ScreenItem(msg, norm)])[0]:
                if sig.label not in blocking:
                    continue
                ok = r.harm != "none"
                fires[sig.label]["harm" if ok else "no harm"] += 1
                if not ok:
                    false_hits[sig.label].append(text)
    print(f"{sum(not r.is_conversation for r in records)} single-message corpus records")
    print(f"{'rule':44} {'for':>6} {'false':>6}")
    for name in sorted(fires):
        c = fires[name]
        good = c["risk"] + c["harm"]
        bad = c["no risk"] + c["no harm"]
        print(f"{name:44} {good:>6} {bad:>6}")
    print("rules above the label's tier (label->rules):", dict(over))
    if args.show:
        for name, texts in sorted(false_hits.items()):
            print(f"\n{name}:")
            for t in texts:
                print(f"   {t[:160]}")


if __name__ == "__main__":
    main()
