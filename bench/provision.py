"""Provisioning figures: apply every theme from empty, then a no-op re-apply, on a throwaway stack.

Starts its own Synapse + Hearth (temp dir, free ports, SQLite; never the `make up` stack), applies
the shipped themes and prints, for each run, the wall time, the HTTP requests made to the homeserver
(by kind), the events the homeserver sent because of them, and the uploads.

    .venv/bin/python bench/provision.py [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge import stack  # noqa: E402
from bridge.clock import SystemClock  # noqa: E402
from bridge.db import make_engine, migrate  # noqa: E402
from bridge.provisioning import ApplyResult, Provisioner, login_gateway  # noqa: E402
from config.settings import load_settings  # noqa: E402
from spaces.staff import DEFAULT_STAFF_FILE, load_staff  # noqa: E402
from spaces.themes import load_themes  # noqa: E402


async def _apply(layout: stack.StackLayout) -> ApplyResult:
    settings = load_settings(layout.hearth_toml)
    engine = make_engine(settings.effective_database_url)
    await asyncio.to_thread(migrate, engine)
    gateway = await login_gateway(settings.matrix.homeserver_url, settings.matrix.bot_user_id,
                                  settings.matrix.bot_password.get_secret_value(),
                                  layout.root / "provision_session.json")
    try:
        provisioner = Provisioner(
            gateway, engine, SystemClock(), themes=load_themes(),
            staff=load_staff(settings.escalation.staff_file or DEFAULT_STAFF_FILE),
            server_name=settings.matrix.server_name,
        )
        return await provisioner.apply()
    finally:
        await gateway.close()
        engine.dispose()


def _report(name: str, result: ApplyResult, wall: float) -> None:
    t = result.tally
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(t.requests.items()))
    print(f"{name:<22} {wall:6.1f} s  {result.changes:4d} changes  {t.total_requests:4d} requests  "
          f"{t.events_sent:4d} events sent  {t.uploads:3d} uploads")
    print(f"{'':<22} requests by kind: {kinds}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the throwaway stack running")
    args = parser.parse_args()
    logging.getLogger("nio.responses").setLevel(logging.ERROR)  # a missing alias is an expected 404
    themes = load_themes()
    print(f"{len(themes)} themes, {sum(len(t.rooms) for t in themes)} rooms + {len(themes)} spaces + staff room")
    root = Path(tempfile.mkdtemp(prefix="hearth-bench-provision-"))
    layout = stack.StackLayout(root=root, hs_port=stack.free_port(), hearth_port=stack.free_port())
    stack.prepare(layout, {"matrix": {"sync_timeout_ms": 5000}})
    try:
        started = time.perf_counter()
        stack.up(layout, say=lambda _m: None)
        print(f"throwaway stack up in {time.perf_counter() - started:.1f} s ({root})")
        started = time.perf_counter()
        first = asyncio.run(_apply(layout))
        _report("apply from empty", first, time.perf_counter() - started)
        started = time.perf_counter()
        again = asyncio.run(_apply(layout))
        _report("no-op re-apply", again, time.perf_counter() - started)
        if again.changes or again.tally.events_sent:
            print("WARNING: the re-apply was not a no-op", file=sys.stderr)
            return 1
    finally:
        if not args.keep:
            stack.down(layout, say=lambda _m: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
