"""The whole moderation pipeline on a labelled set in Hearth's scheme: crisis alerts per tier, blocks
per harm type, and the issue's targets.

    .venv/bin/python bench/support_eval.py                      # the first frozen evaluation set
    .venv/bin/python bench/support_eval.py --data bench/data/frozen_eval_2   # the second
    .venv/bin/python bench/support_eval.py --data bench/data/frozen_eval_3   # the third
    .venv/bin/python bench/support_eval.py --data bench/data/frozen_eval_groups   # identity, groups, opinions
    .venv/bin/python bench/support_eval.py --data DIR           # another folder of *.jsonl in the scheme
    .venv/bin/python bench/support_eval.py --toxicity none      # without the toxicity model
    .venv/bin/python bench/support_eval.py --validation         # development: the model's validation split
    .venv/bin/python bench/support_eval.py --validation --upto-generation 2   # only generations 0-2 of it
    .venv/bin/python bench/support_eval.py --validation --from-generation 4   # only generation 4 on
    .venv/bin/python bench/support_eval.py --data bench/data/corpus_next      # development: untrained slices

``--validation`` reads the training corpus's validation split (1,588 records the shipped model
was thresholded on and never trained on, rebuilt as training builds it): the place to try a policy
or rule change, never a frozen set.

Every message goes through ``Pipeline.from_config`` (normaliser -> rules, crisis with context, harm,
behaviour, toxicity -> config/policy.toml) as a new member of a ``support`` room would send it (joined a
minute before, as a fresh member sent each message of the outside trial), each from a different
member; a conversation's messages come from one member, 20 seconds apart. What counts:

- alerted: the verdict escalates (any tier); a conversation's tier is the highest of its messages';
- blocked: the gate would refuse it (a ``block`` disposition); silenced: block, redact or mute;
- imminent alerted as imminent; high alerted at high or above; false alert: any alert on tier none
  (also given for the benign messages alone, tier none and harm none: an alert on a threat or an
  insult at a member is a wrong tier, not a benign message alarmed on);
- abuse blocked: harm other than none, blocked before delivery; benign blocked: tier none and harm
  none, blocked.

The frozen sets (bench/data/frozen_eval, frozen_eval_2, frozen_eval_3, frozen_eval_groups) are never trained or tuned on; each
run of this script on one is a measurement, and the README says how many were made.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.ids import EventID, RoomID, UserID  # noqa: E402
from moderation.labels import (  # noqa: E402
    HARMS,
    TIER_RANK,
    TIERS,
    Labelled,
    data_files,
    digest,
    load_labelled,
)
from moderation.pipeline import Pipeline  # noqa: E402
from moderation.types import Message, Verdict  # noqa: E402

FROZEN = ROOT / "bench" / "data" / "frozen_eval"
SILENCING = ("block", "redact", "mute")


def messages_for(records: list[Labelled], profile: str) -> list[list[Message]]:
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    out = []
    for i, r in enumerate(records):
        sender = UserID(f"@member{i}:hearth.test")
        first = start + timedelta(minutes=30 * i)
        out.append(
            [
                Message(
                    event_id=EventID(f"$eval{i}_{k}"),
                    room_id=RoomID("!room:hearth.test"),
                    sender=sender,
                    body=text,
                    sent_at=first + timedelta(seconds=20 * k),
                    profile=profile,
                    space="eval",
                    sender_joined_at=first - timedelta(minutes=1),
                )
                for k, text in enumerate(r.messages)
            ]
        )
    return out


def alerted_tier(verdicts: list[Verdict]) -> str:
    tiers = [d.tier or "none" for v in verdicts for d in v.of_kind("escalate")]
    return max(tiers, key=lambda t: TIER_RANK.get(t, 0), default="none")


def silenced(verdicts: list[Verdict]) -> bool:
    """Whether any of the messages was blocked, redacted or muted."""
    return any(d.kind in SILENCING for v in verdicts for d in v.dispositions)


def blocker(verdicts: list[Verdict]) -> str | None:
    for v in verdicts:
        for d in v.of_kind("block"):
            return d.reason.split(":")[0]
    return None


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:5.1f}% ({a}/{b})" if b else "   n/a"


def table(
    title: str, rows: list[str], cols: list[str], counts: dict[str, Counter[str]], total: tuple[str, ...] = ()
) -> None:
    """Rows by columns; ``n`` adds the ``total`` columns (default: all of them)."""
    width = max(12, *(len(r) for r in rows)) + 2
    print(f"\n{title}")
    print(" " * width + "".join(f"{c:>13}" for c in cols) + f"{'n':>8}")
    for r in rows:
        n = sum(counts[r][c] for c in total) if total else sum(counts[r].values())
        if n:
            print(f"{r:<{width}}" + "".join(f"{counts[r][c]:>13}" for c in cols) + f"{n:>8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=FROZEN)
    ap.add_argument(
        "--validation", action="store_true", help="the corpus's validation split instead of --data"
    )
    ap.add_argument(
        "--upto-generation",
        type=int,
        metavar="G",
        help="with --validation: only the split's records of corpus generations 0 to G (the folders an "
        "older model's corpus had), so an old and a new model compare on the same held-out records",
    )
    ap.add_argument(
        "--from-generation",
        type=int,
        default=0,
        metavar="G",
        help="with --validation: only the split's records of corpus generations G on (e.g. the folders "
        "written for the newest model)",
    )
    ap.add_argument(
        "--show", action="store_true", help="print each miss (development data only, never a frozen set)"
    )
    ap.add_argument("--profile", default="support")
    ap.add_argument(
        "--toxicity",
        choices=("offline", "none"),
        default="offline",
        help="offline: the shipped offline toxicity scorer (as `make up` runs it); none: without it",
    )
    args = ap.parse_args()
    if args.show and not args.validation and args.data.resolve().name.startswith("frozen"):
        ap.error("--show prints the text of each miss: development data only, never a frozen set")
    logging.basicConfig(level=logging.WARNING)

    if (args.upto_generation is not None or args.from_generation) and not args.validation:
        ap.error(
            "--upto-generation and --from-generation choose among the validation split's records: "
            "only with --validation"
        )
    if args.validation:
        from bench.train_support_model import CORPUS, validation_records

        records = validation_records(
            upto_generation=args.upto_generation, from_generation=args.from_generation
        )
        where = f"{CORPUS.relative_to(ROOT)}, validation split"
        if args.upto_generation is not None or args.from_generation:
            upto = "" if args.upto_generation is None else f" to {args.upto_generation}"
            where += f", generations {args.from_generation}{upto or ' on'}"
        files = data_files(CORPUS)
    else:
        files = data_files(args.data)
        records = load_labelled(files)
        where = str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data)
    print(
        f"{where}: {len(records)} records ({sum(r.is_conversation for r in records)} conversations), "
        f"digest {digest(files)[:16]}"
    )
    extra = []
    if args.toxicity == "offline":
        from moderation.detectors.toxicity import load_toxicity_detector

        det, description = load_toxicity_detector(None, logging.getLogger("eval"), runtime="onnx")
        extra.append(det)
        print(f"toxicity: {description}")
    pipeline = Pipeline.from_config(extra=extra)
    model = next(d for d in pipeline.detectors if d.name == "crisis").model  # type: ignore[attr-defined]
    print(f"support model: {model.description if model else 'none'}")
    if args.validation and model is not None and model.card.get("corpus_digest") != digest(files):
        print(
            "  note: the corpus is not the one this model was trained on, so this split is not exactly "
            "its validation split (records it was trained on may be in it)"
        )

    groups = messages_for(records, args.profile)
    verdicts: list[list[Verdict]] = []
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
    n_messages = 0
    for msgs in groups:
        verdicts.append([pipeline.screen([m])[0] for m in msgs])
        n_messages += len(msgs)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    wall = time.perf_counter() - wall0

    tier_conf: dict[str, Counter[str]] = {t: Counter() for t in TIERS}
    harm_conf: dict[str, Counter[str]] = {h: Counter() for h in HARMS}
    silenced_crisis: list[str] = []
    for r, vs in zip(records, verdicts, strict=True):
        tier_conf[r.tier][alerted_tier(vs)] += 1
        by = blocker(vs)
        harm_conf[r.harm]["blocked" if by else "delivered"] += 1
        if by:
            harm_conf[r.harm][f"by {by.split('.')[0]}"] += 1
        if r.tier != "none" and silenced(vs):
            silenced_crisis.append(r.source)
        if any(d.kind == "flag" for v in vs for d in v.dispositions) and not by:
            harm_conf[r.harm]["flagged"] += 1

    table("crisis: labelled tier (rows) -> alerted tier (columns)", list(TIERS), list(TIERS), tier_conf)
    table(
        "harm: labelled harm (rows) -> outcome (columns); 'by' names the detector of the first block",
        list(HARMS),
        ["blocked", "delivered", "flagged", "by harm", "by rules", "by toxicity", "by behaviour"],
        harm_conf,
        total=("blocked", "delivered"),
    )
    imminent = tier_conf["imminent"]
    high = tier_conf["high"]
    benign_records = [
        (r, vs) for r, vs in zip(records, verdicts, strict=True) if r.tier == "none" and r.harm == "none"
    ]
    none_tier = tier_conf["none"]
    abuse = [(r, vs) for r, vs in zip(records, verdicts, strict=True) if r.harm != "none"]
    crisis_n = sum(1 for r in records if r.tier != "none")
    print("\ntargets")
    print(
        f"  imminent alerted as imminent     {pct(imminent['imminent'], sum(imminent.values()))}   (>= 95%)"
    )
    print(
        f"  high alerted at high or above    {pct(high['high'] + high['imminent'], sum(high.values()))}   (>= 90%)"
    )
    print(
        f"  false alerts on tier none        {pct(sum(none_tier.values()) - none_tier['none'], sum(none_tier.values()))}   (<= 3%)"
    )
    single = [
        (r, vs) for r, vs in zip(records, verdicts, strict=True) if r.tier == "none" and not r.is_conversation
    ]
    talks = [
        (r, vs) for r, vs in zip(records, verdicts, strict=True) if r.tier == "none" and r.is_conversation
    ]
    benign_alerts = sum(1 for _, vs in benign_records if alerted_tier(vs) != "none")
    print(
        f"    of which single messages       {pct(sum(1 for _, vs in single if alerted_tier(vs) != 'none'), len(single))}"
    )
    print(
        f"    of which conversations         {pct(sum(1 for _, vs in talks if alerted_tier(vs) != 'none'), len(talks))}"
        "   (alerted on a message before the one that resolves it)"
    )
    print(
        f"  false alerts on benign           {pct(benign_alerts, len(benign_records))}   (tier none, harm none)"
    )
    print(f"  crisis messages silenced         {len(silenced_crisis)} of {crisis_n}   (0)")
    print(
        f"  abuse blocked before delivery    {pct(sum(1 for _, vs in abuse if blocker(vs)), len(abuse))}   (>= 90%)"
    )
    print(
        f"  benign blocked                   {pct(sum(1 for _, vs in benign_records if blocker(vs)), len(benign_records))}   (<= 2%)"
    )
    print(
        f"\n{n_messages} messages screened one at a time: CPU {1000 * cpu / n_messages:.1f} ms per message "
        f"for the whole pipeline (wall {1000 * wall / n_messages:.1f} ms)"
    )
    if silenced_crisis:
        print(f"  silenced crisis records: {', '.join(silenced_crisis)}")
    if args.show:
        show_misses(records, verdicts)


def why(vs: list[Verdict]) -> str:
    """What each message's crisis signal rested on, and any block."""
    parts = []
    for k, v in enumerate(vs):
        crisis = [
            f"{s.tier}:{s.rule}" if s.tier else f"{s.label.split('.')[-1]}:{s.score:.2f}"
            for s in v.signals
            if s.detector == "crisis"
        ]
        blocks = [d.reason for d in v.of_kind("block")]
        if crisis or blocks:
            parts.append(f"#{k} " + " ".join(crisis + [f"block:{b}" for b in blocks]))
    return "; ".join(parts) or "nothing"


def show_misses(records: list[Labelled], verdicts: list[list[Verdict]]) -> None:
    """Each record the targets count against, with its labels, text and what fired."""
    print("\nmisses (labelled tier/harm/target -> alerted tier, what fired)")
    for r, vs in zip(records, verdicts, strict=True):
        got = alerted_tier(vs)
        by = blocker(vs)
        miss = (
            (r.tier == "none" and got != "none")
            or (r.tier in ("high", "imminent") and TIER_RANK[got] < TIER_RANK[r.tier])
            or (r.tier != "none" and silenced(vs))
            or (r.harm != "none" and not by)
            or (r.tier == "none" and r.harm == "none" and by)
        )
        if miss:
            text = " | ".join(r.messages)
            print(f"- {r.source} {r.tier}/{r.harm}/{r.target} -> {got}: {why(vs)}\n    {text[:400]}")


if __name__ == "__main__":
    main()
