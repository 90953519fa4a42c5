"""Another process holding Hearth's SQLite database locked (run by tests/faults/test_restarts.py).

``python -m tests.faults.sqlite_locker URL ROOM SENDER EVENT``: commits an escalation with its outbox
rows for that message (as ``EscalationDesk.raise_for`` would: "raised before" the lock), then at once
takes SQLite's exclusive write lock, prints ``locked <escalation id>`` and holds the lock until a line
arrives on stdin.
"""

from __future__ import annotations

import sqlite3
import sys

from bridge.db import make_engine
from tests.faults.traffic import commit_escalation


def main(url: str, room: str, sender: str, event_id: str) -> None:
    engine = make_engine(url)
    esc_id = commit_escalation(engine, room, sender, event_id)
    engine.dispose()
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", esc_id, flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    conn.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
