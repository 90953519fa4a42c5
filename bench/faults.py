"""The issue's full fault run: 100 crisis and 500 ordinary messages while Hearth is SIGKILLed at random
moments, on a throwaway stack, then the other faults at their test sizes; prints the counts.

    flock /tmp/hearth-bench.lock .venv/bin/python bench/faults.py [--crises 100] [--ordinary 500]
        [--kills 5] [--rate 5] [--seed N] [--all]

It runs tests/faults (the same code ``make test`` runs at a smaller size: 12 crisis, 60 ordinary,
3 kills) with the sizes in the environment, so the figures come from the same checks: every message
screened once and acted on, none missing from the bot's sync ledger, one escalation, one alert and one
crisis-resources message per crisis, nothing lost, nothing duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crises", type=int, default=100)
    ap.add_argument("--ordinary", type=int, default=500)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--rate", type=float, default=5.0, help="messages per second")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--all", action="store_true", help="also the other fault tests (Synapse restart, ...)")
    args = ap.parse_args()
    report = Path(tempfile.mkstemp(prefix="hearth-faults-", suffix=".json")[1])
    env = {
        **os.environ,
        "HEARTH_FAULTS_CRISES": str(args.crises),
        "HEARTH_FAULTS_ORDINARY": str(args.ordinary),
        "HEARTH_FAULTS_KILLS": str(args.kills),
        "HEARTH_FAULTS_RATE": str(args.rate),
        "HEARTH_FAULTS_REPORT": str(report),
    }
    if args.seed is not None:
        env["HEARTH_FAULTS_SEED"] = str(args.seed)
    target = (
        "tests/faults"
        if args.all
        else "tests/faults/test_restarts.py::test_sigkill_at_random_moments_loses_and_duplicates_nothing"
    )
    code = subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target], cwd=ROOT, env=env
    )
    if report.stat().st_size:
        for name, counts in json.loads(report.read_text()).items():
            print(f"{name}: {json.dumps(counts)}")
    report.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
