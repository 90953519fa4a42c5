"""Fault tests: real Synapse and Hearth processes (tests/e2e's throwaway stacks) that get killed,
restarted, cut off from their database or left without disk space while members post.

Each module builds its own stack, so a fault never leaks into another module's tests. The counts of
each run (sent, screened, escalated, alerts delivered, lost, duplicated) are printed at the end of the
pytest run and written to ``$HEARTH_FAULTS_REPORT`` when set.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.traffic import Counts

COUNTS: dict[str, Counts] = {}
# Re-pages would add load that has nothing to do with the fault (the e2e stacks use a 3 s SLA).
SLOW_SLA = {"sla_imminent_seconds": 3600, "sla_high_seconds": 3600, "sla_moderate_seconds": 7200}


def fault_overrides(model_cache: Path, **extra: Any) -> dict[str, Any]:
    """Settings for a fault stack: short database waits (requests answer 503 in about 2 s instead of
    10), one model cache for every fault stack (the ONNX exports are made once per run), slow SLAs."""
    base: dict[str, Any] = {
        "database_busy_seconds": 2.0,
        "moderation": {"report_poll_seconds": 1, "model_cache_dir": str(model_cache)},
        "escalation": dict(SLOW_SLA),
    }
    for key, value in extra.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) else value
    return base


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Hearth's cache of ONNX exports, kept between runs (keyed by the model's hash and the library
    versions, so a stale entry is never used): the export costs a minute on a busy 2-core machine."""
    path = Path(tempfile.gettempdir()) / "hearth-faults-model-cache"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def record_counts() -> Iterator[Any]:
    def record(name: str, counts: Counts) -> None:
        COUNTS[name] = counts

    yield record
    if (path := os.environ.get("HEARTH_FAULTS_REPORT")) and COUNTS:
        Path(path).write_text(json.dumps({k: vars(v) for k, v in COUNTS.items()}, indent=2) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if COUNTS:
        terminalreporter.section("faults: counts")
        for name, counts in COUNTS.items():
            terminalreporter.write_line(f"{name}: {counts.line()}")
