"""What Hearth's gate adds to a message send through Synapse, measured in one run on this machine.

    .venv/bin/python bench/gate_latency.py [--messages 150]

Starts two throwaway homeservers from the same template in a temp dir: one with the
``synapse-http-antispam`` module pointed at a running Hearth (one theme provisioned), one without the
module (the baseline). The same rate-limit-exempt members send the same ordinary support messages,
one at a time (20 members taking turns, 0.2 s apart: one member sending this fast
would rightly be muted by the flood detector), to:

- baseline: a room on the Synapse without the module;
- gate, Hearth room: the anxiety-panic discussion room, screened by the full pipeline;
- gate, other room: a room Hearth does not manage (the gate's callback answers at once).

It prints p50/p95/p99 of the client-observed ``PUT /send`` latency and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge import stack  # noqa: E402
from bridge.provisioning import run_spaces  # noqa: E402
from config.settings import load_settings  # noqa: E402
from tests.e2e.matrix import User, new_user  # noqa: E402

MESSAGES = [
    "Thanks everyone, I slept a bit better last night.",
    "Does anyone else find mornings the hardest part of the day?",
    "I tried the breathing exercise from yesterday and it helped a little.",
    "Honestly this week has been exhausting, but I'm still here.",
    "Welcome to the new folks, glad you found us.",
    "My therapist suggested journaling, has that worked for anyone?",
]


MEMBERS = 20  # the discussion room holds 25


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


PAUSE = 0.2  # seconds between sends: with MEMBERS rotating, nobody trips the flood detector


def measure(users: list[User], room: str, n: int) -> list[float]:
    for i in range(5):  # warm-up: connections, caches, the first batch of the pipeline
        users[i % len(users)].say(room, f"{MESSAGES[i % len(MESSAGES)]} (warm-up {i})")
    out = []
    for i in range(n):
        time.sleep(PAUSE)
        t = time.perf_counter()
        users[i % len(users)].say(room, f"{MESSAGES[i % len(MESSAGES)]} ({i})")
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=150)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("nio").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="hearth-gate-bench-"))
    gated = stack.StackLayout(root / "gated", hs_port=stack.free_port(), hearth_port=stack.free_port())
    plain = stack.StackLayout(root / "plain", hs_port=stack.free_port(), hearth_port=stack.free_port())
    try:
        stack.prepare(plain, gate_enabled=False)
        stack.start_synapse(plain)
        print("starting a Synapse with the gate and Hearth (loads the moderation models) ...", flush=True)
        stack.up(gated, say=lambda _m: None)
        themes = root / "themes"
        themes.mkdir()
        shutil.copy(ROOT / "config" / "spaces" / "anxiety-panic.toml", themes)
        settings = load_settings(gated.hearth_toml)
        if asyncio.run(run_spaces(settings, "apply", themes, progress=False, out=open("/dev/null", "w"))) != 0:
            raise SystemExit("provisioning the bench theme failed")

        admin_plain = new_user(plain, "benchadmin", admin=True)
        plain_members = [new_user(plain, "bench", exempt_with=admin_plain.token) for _ in range(MEMBERS)]
        baseline_room = plain_members[0].create_room(name="baseline", preset="public_chat")
        for m in plain_members[1:]:
            m.join(baseline_room)

        admin = new_user(gated, "benchadmin", admin=True)
        members = [new_user(gated, "bench", exempt_with=admin.token) for _ in range(MEMBERS)]
        other_room = members[0].create_room(name="not Hearth's", preset="public_chat")
        hearth_room = ""
        for m in members:
            m.join("#anxiety-panic:localhost")
            hearth_room = m.join("#anxiety-panic-discussion:localhost")
            if m is not members[0]:
                m.join(other_room)

        rows = [
            ("baseline: Synapse without the module", measure(plain_members, baseline_room, args.messages)),
            ("gate: Hearth support room (full pipeline)", measure(members, hearth_room, args.messages)),
            ("gate: room Hearth does not manage", measure(members, other_room, args.messages)),
        ]
        base = statistics.median(rows[0][1])
        print(f"\nPUT /send latency, {args.messages} sequential messages each (ms)")
        print(f"{'path':44} {'p50':>7} {'p95':>7} {'p99':>7} {'p50 / baseline':>15}")
        for name, values in rows:
            p50 = statistics.median(values)
            print(f"{name:44} {p50:7.1f} {percentile(values, 95):7.1f} {percentile(values, 99):7.1f}"
                  f" {p50 / base:14.2f}x")
        added = statistics.median(rows[1][1]) - base
        print(f"\nThe gate adds {added:.1f} ms at the median to a message in a Hearth room "
              f"(budget {settings.gate.budget_ms} ms).")
    finally:
        stack.down(gated, say=lambda _m: None)
        stack.stop_synapse(plain)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
