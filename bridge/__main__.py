"""Entry point: ``hearth [--config FILE] run | stack up|down|status``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from config.settings import Settings, SettingsError, default_operator_file, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    path = Path(args.config) if args.config else default_operator_file()
    try:
        return load_settings(path)
    except SettingsError as e:
        print(f"hearth: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("nio", "apscheduler.executors", "apscheduler.scheduler", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings.log_level)
    from bridge.service import HearthService

    asyncio.run(HearthService(settings).run())
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from bridge import stack

    layout = stack.StackLayout(Path(args.data_dir).resolve())
    try:
        if args.action == "up":
            stack.up(layout)
        elif args.action == "down":
            stack.down(layout)
        elif args.action == "status":
            import httpx

            for name, url in (("synapse", f"{layout.hs_url}/_matrix/client/versions"), ("hearth", f"{layout.hearth_url}/healthz")):
                try:
                    r = httpx.get(url, timeout=3)
                    print(f"{name}: {r.status_code} {r.text[:400] if name == 'hearth' else ''}")
                except httpx.HTTPError as e:
                    print(f"{name}: not answering ({e})")
    except stack.StackError as e:
        print(f"hearth stack {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearth", description="Hearth: peer-support spaces on Matrix.")
    parser.add_argument("--config", help="operator settings file (default: $HEARTH_CONFIG or .data/hearth.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the service (HTTP API, bot, scheduler)").set_defaults(fn=cmd_run)
    p = sub.add_parser("stack", help="manage the local Synapse + Hearth processes")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--data-dir", default=".data")
    p.set_defaults(fn=cmd_stack)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
