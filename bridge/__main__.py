"""Entry point: ``hearth [--config FILE] run | stack up|down|status | spaces plan|apply |
accounts token|staff|pending|approve|refuse | models fetch``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("nio", "apscheduler.executors", "apscheduler.scheduler", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings.log_level)
    # What Hearth writes (its SQLite database, the model cache, the bot's session) is the owner's only,
    # however it was started.
    os.umask(0o077)
    from bridge.service import HearthService

    asyncio.run(HearthService(settings).run())
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from bridge import stack

    layout = stack.StackLayout(Path(args.data_dir).resolve())
    try:
        if args.action == "up":
            stack.up(layout, synapse_database=args.synapse_database)
        elif args.action == "down":
            stack.down(layout)
        elif args.action == "status":
            import httpx

            for name, url in (
                ("synapse", f"{layout.hs_url}/_matrix/client/versions"),
                ("hearth", f"{layout.hearth_url}/healthz"),
            ):
                try:
                    r = httpx.get(url, timeout=3)
                    detail = r.text[:400] if name == "hearth" else ""  # /healthz JSON, never message content
                    print(f"{name}: {r.status_code} {detail}")
                except httpx.HTTPError as e:
                    print(f"{name}: not answering ({e})")
    except stack.StackError as e:
        print(f"hearth stack {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging("WARNING")
    logging.getLogger("nio.responses").setLevel(logging.ERROR)  # a missing alias is an expected 404
    from bridge.provisioning import run_spaces

    themes = Path(args.themes) if args.themes else None
    return asyncio.run(run_spaces(settings, args.action, themes))


def cmd_accounts(args: argparse.Namespace) -> int:
    """``hearth accounts token``: a registration token for someone to sign up with (Element asks for
    it). ``hearth accounts staff @user --role R``: a staff account, listed in the staff file.
    ``hearth accounts pending`` / ``approve <reference>`` / ``refuse <reference>``: requests for a
    code held for approval (``join.require_approval``)."""
    settings = _settings(args)
    _logging("WARNING")
    if args.action == "staff":
        return _add_staff(settings, args)
    if args.action in ("pending", "approve", "refuse"):
        return _requests(settings, args)
    from bridge.gateway import GatewayError
    from bridge.join import operator_token
    from config.sanctions import parse_duration

    try:
        expires = parse_duration(args.expires)
    except ValueError as e:
        print(f"hearth accounts token: --expires: {e}", file=sys.stderr)
        return 2
    if args.uses is not None and args.uses < 1:
        print("hearth accounts token: --uses must be 1 or more", file=sys.stderr)
        return 2
    try:
        token = asyncio.run(operator_token(settings, uses=args.uses, expires_in=expires))
    except (GatewayError, OSError) as e:
        print(f"hearth accounts token: the homeserver refused: {e}", file=sys.stderr)
        return 1
    home = settings.join.public_homeserver_url or settings.matrix.homeserver_url
    uses = "unlimited uses" if token.uses_allowed is None else f"{token.uses_allowed} use(s)"
    until = token.expires_at.isoformat(timespec="minutes") if token.expires_at else "never"
    print(token.token)
    print(f"({uses}, expires {until}; homeserver {home})", file=sys.stderr)
    return 0


def _requests(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.gateway import GatewayError
    from bridge.join import JoinRequestError, decide_request, list_requests

    if args.action == "pending":
        rows = asyncio.run(list_requests(settings))
        if not rows:
            print("No requests are waiting.")
        for row in rows:
            print(
                f"{row.reference}  asked {row.created_at:%Y-%m-%d %H:%M} UTC, "
                f"forgotten after {row.expires_at:%Y-%m-%d %H:%M} UTC"
            )
        return 0
    if not args.user:
        print(f"hearth accounts {args.action}: which request? give its reference", file=sys.stderr)
        return 2
    try:
        row = asyncio.run(decide_request(settings, args.user, approve=args.action == "approve"))
    except JoinRequestError as e:
        print(f"hearth accounts {args.action}: {e}", file=sys.stderr)
        return 2
    except (GatewayError, OSError) as e:
        print(f"hearth accounts {args.action}: the homeserver refused: {e}", file=sys.stderr)
        return 1
    if row.status == "approved":
        print(f"{row.reference} approved: their page shows the sign-up code now (single use).")
    else:
        print(f"{row.reference} refused: their page says so.")
    return 0


def _add_staff(settings: Settings, args: argparse.Namespace) -> int:
    import re

    from bridge.gateway import GatewayError
    from bridge.join import register_staff
    from spaces.staff import DEFAULT_STAFF_FILE, USER_ID_PATTERN, StaffError, add_staff_entry, load_staff

    user, role = args.user, args.role
    if (
        not user
        or not re.match(USER_ID_PATTERN, user)
        or not user.endswith(f":{settings.matrix.server_name}")
    ):
        print(
            f"hearth accounts staff: {user!r}: give a Matrix ID of this server (@name:{settings.matrix.server_name})",
            file=sys.stderr,
        )
        return 2
    if role is None:
        print("hearth accounts staff: --role clinician|moderator|admin is required", file=sys.stderr)
        return 2
    name = (args.display_name or user[1:].split(":", 1)[0]).strip()[:100]
    staff_file = (
        Path(args.staff_file) if args.staff_file else (settings.escalation.staff_file or DEFAULT_STAFF_FILE)
    )
    try:  # refused before the account is touched
        listed = load_staff(staff_file).role_of(user)
    except StaffError as e:
        print(f"hearth accounts staff: {e}", file=sys.stderr)
        return 2
    if listed is not None:
        print(f"hearth accounts staff: {staff_file}: {user} is already listed as {listed}", file=sys.stderr)
        return 2
    try:
        password = asyncio.run(register_staff(settings, user, name))
    except (GatewayError, OSError) as e:
        print(f"hearth accounts staff: the homeserver refused: {e}", file=sys.stderr)
        return 1
    try:
        add_staff_entry(staff_file, user, role, name)
    except StaffError as e:
        print(f"hearth accounts staff: {e}", file=sys.stderr)
        return 2
    if password is not None:
        print(
            f"{user} registered; their first password (give it to them privately, they change it in Element): {password}"
        )
    else:
        print(f"{user} already had an account; display name set to {name!r}")
    print(
        f"listed in {staff_file} as {role}. Reload Hearth (kill -HUP <hearth pid>) or restart it "
        "(make down && make up): it reads the staff file again, and make up applies the spaces "
        "(invites to the staff rooms, power level 50)."
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Fetch an official Detoxify checkpoint where the machine is online; say how to use it."""
    from moderation.detectors.toxicity import ToxicityWeightsError, fetch_detoxify

    try:
        path = fetch_detoxify(args.dest, args.model)
    except ToxicityWeightsError as e:
        print(f"hearth models fetch: {e}", file=sys.stderr)
        return 1
    print(
        f"Detoxify '{args.model}' checkpoint at {path}.\nUse it: set moderation.toxicity_checkpoint = \"{path}\" "
        "in your settings file (or HEARTH_MODERATION__TOXICITY_CHECKPOINT) and restart Hearth."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearth", description="Hearth: peer-support spaces on Matrix.")
    parser.add_argument(
        "--config", help="operator settings file (default: $HEARTH_CONFIG or .data/hearth.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the service (HTTP API, bot, scheduler)").set_defaults(fn=cmd_run)
    p = sub.add_parser("stack", help="manage the local Synapse + Hearth processes")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--data-dir", default=".data")
    p.add_argument(
        "--synapse-database",
        metavar="URL",
        help="up: PostgreSQL for Synapse (postgresql://user@host:port/dbname, created as Synapse "
        "needs it if missing); remembered for later runs. Default: SQLite",
    )
    p.set_defaults(fn=cmd_stack)
    p = sub.add_parser("spaces", help="provision the themed support spaces: plan (show) or apply")
    p.add_argument("action", choices=["plan", "apply"])
    p.add_argument("--themes", help="directory of theme files (default: config/spaces)")
    p.set_defaults(fn=cmd_spaces)
    p = sub.add_parser(
        "accounts",
        help="accounts: a registration token to sign up with, a staff account (listed in the staff file), "
        "or requests for a code held for approval (pending, approve, refuse)",
    )
    p.add_argument("action", choices=["token", "staff", "pending", "approve", "refuse"])
    p.add_argument(
        "user",
        nargs="?",
        help="staff: the Matrix ID, e.g. @ana:localhost; approve/refuse: the request's reference",
    )
    p.add_argument("--role", choices=["clinician", "moderator", "admin"], help="staff: their one role")
    p.add_argument("--display-name", help="staff: how alerts and pages name them")
    p.add_argument("--staff-file", help="staff: the staff file to list them in (default: the settings')")
    p.add_argument("--uses", type=int, default=1, help="how many accounts it may register (default 1)")
    p.add_argument("--expires", default="7d", help="10m, 2h, 7d, 2w or permanent (default 7d)")
    p.set_defaults(fn=cmd_accounts)
    p = sub.add_parser("models", help="fetch model weights (needs network; Hearth runs offline without them)")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("--model", default="original", help="Detoxify model: original, unbiased or multilingual")
    p.add_argument("--dest", default=".data/models", help="where to put the checkpoint")
    p.set_defaults(fn=cmd_models)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
