"""Counts of a labelled data folder in Hearth's scheme (what the corpus and frozen-set READMEs quote).

    .venv/bin/python bench/data_stats.py bench/data/corpus
    .venv/bin/python bench/data_stats.py bench/data/frozen_eval

Validates every file (a bad record is reported with file, line and key) and prints records per
writer folder, per tier and category, harm and target, conversations, and the folder's digest.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.errors import ConfigError  # noqa: E402
from moderation.labels import CATEGORIES, HARMS, TARGETS, TIERS, data_files, digest, load_labelled  # noqa: E402


def line(title: str, counts: Counter[str], order: tuple[str, ...] | list[str]) -> str:
    return f"{title:10} " + ", ".join(f"{k} {counts[k]}" for k in order if counts[k])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    files = data_files(args.folder)
    try:
        records = load_labelled(files)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    by_writer = Counter(str(f.parent.relative_to(args.folder)) for f in files for _ in f.read_text().splitlines() if _.strip())
    print(f"{args.folder}: {len(records)} records in {len(files)} files, digest {digest(files)}")
    print(line("writers", by_writer, sorted(by_writer)))
    print(line("tier", Counter(r.tier for r in records), TIERS))
    print(line("category", Counter(r.category or "-" for r in records), CATEGORIES))
    print(line("harm", Counter(r.harm for r in records), HARMS))
    print(line("target", Counter(r.target for r in records), TARGETS))
    conv = [r for r in records if r.is_conversation]
    print(f"{'convers.':10} {len(conv)} ({sum(len(r.messages) for r in conv)} messages); "
          f"messages in all {sum(len(r.messages) for r in records)}")
    voices = Counter(r.voice for r in records)
    print(f"{'voices':10} {len(voices)} distinct; most used: " + ", ".join(f"{v} {n}" for v, n in voices.most_common(8)))


if __name__ == "__main__":
    main()
