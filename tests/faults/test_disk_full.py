"""The data folder's disk runs full: Hearth's data folder (and its SQLite database) is a small tmpfs the
test mounts (it runs as root; skipped with the reason where mounting is not allowed), then fills with a
file and empties again while members post."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack, hearth_room, throwaway_stack
from tests.e2e.escalation_staff import staff_room
from tests.e2e.matrix import wait_for
from tests.faults.conftest import fault_overrides
from tests.faults.traffic import CRISIS, ORDINARY, Traffic, check_exactly_once, wait_until_settled

pytestmark = pytest.mark.e2e

SIZE_MB = 48
MIN_FREE_MB = 4


def _mount(path: Path) -> str | None:
    """Mount a tmpfs of SIZE_MB at ``path``; the reason it could not, or None."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}")


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[tuple[Stack, Path]]:
    root = Path(tmp_path_factory.mktemp("faults-disk"))
    data = root / "data"
    if (why := _mount(data)) is not None:
        pytest.skip(
            f"cannot mount a small tmpfs for the data folder here ({why}); needs root or CAP_SYS_ADMIN"
        )
    try:
        overrides = fault_overrides(model_cache, data_dir=str(data), data_min_free_mb=MIN_FREE_MB)
        with throwaway_stack(root, f"sqlite:///{data / 'hearth.db'}", overrides) as hs:
            yield hs, data
    finally:
        for _ in range(20):  # the processes are gone; the mount may still be busy for a moment
            if subprocess.run(["umount", str(data)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until the disk is full; returns the file."""
    filler = folder / "filler.bin"
    chunk = b"\0" * (1024 * 1024)
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(chunk)
            f.flush()
    return filler


def test_a_full_data_folder_is_reported_and_recovered_from(
    small_disk: tuple[Stack, Path], record_counts
) -> None:
    """With the data folder full, /healthz answers 503 naming ``data_folder`` with the free space, the log
    says so, members' messages are still delivered; when space returns, /healthz is 200 again, the log
    says so, and every message posted while it was full is screened and its crisis escalated once."""
    hs, data = small_disk
    staff = staff_room(hs)
    room = hearth_room(hs)
    traffic = Traffic.join(hs, room, crises=2, talkers=2)
    url = f"{hs.layout.hearth_url}/healthz"
    assert httpx.get(url, timeout=10).status_code == 200
    log_offset = hs.layout.hearth_log.stat().st_size

    filler = fill(data)
    try:
        r = wait_for(
            lambda: (r := httpx.get(url, timeout=10)).status_code == 503 and r,
            timeout=20,
            what="/healthz to report the full data folder",
        )
        body = r.json()
        assert "data_folder" in body["down"]
        folder = body["parts"]["data_folder"]["folders"][0]
        assert folder["free_mb"] < MIN_FREE_MB
        assert "MB free" in folder["error"]
        traffic.send_all(traffic.plan(4), rate=2.0)
        assert len(traffic.sent) == 6
        assert not traffic.refused
        time.sleep(3)
        log = hs.layout.hearth_log.read_bytes()[log_offset:].decode(errors="replace")
        assert f"data folder {data.resolve()} is full" in log
    finally:
        filler.unlink()
    wait_for(
        lambda: httpx.get(url, timeout=10).status_code == 200, timeout=30, what="/healthz to be 200 again"
    )
    ledger = wait_until_settled(hs, traffic.sent, timeout=120)
    counts = check_exactly_once(hs, traffic, staff, ledger)
    log = hs.layout.hearth_log.read_bytes()[log_offset:].decode(errors="replace")
    assert "has space again" in log
    # No message text in the log, even when writes failed (statement parameters are hidden).
    assert not [t for t in CRISIS + ORDINARY if t in log], "message text reached the log"
    record_counts("data folder full (tmpfs)", counts)
