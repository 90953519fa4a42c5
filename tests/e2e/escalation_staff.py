"""The staff file the end-to-end stacks run with (fixed accounts the tests register on demand)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import httpx

from bridge import stack
from tests.e2e.matrix import MatrixError, User, q, wait_for

ALIAS = "#hearth-staff:localhost"
CLINICIAN = "@escclin1:localhost"  # on call around the clock
BACKUP = "@escclin2:localhost"  # the rota's fallback
MODERATOR = "@escmod1:localhost"
ADMIN = "@escadmin1:localhost"

STAFF_TOML = f"""
[[moderators]]
user_id = "{MODERATOR}"
display_name = "Test moderator"

[[admins]]
user_id = "{ADMIN}"
display_name = "Test operator"

[[clinicians]]
user_id = "{CLINICIAN}"
display_name = "Test clinician on call"

[[clinicians]]
user_id = "{BACKUP}"
display_name = "Test backup clinician"

[rota]
timezone = "UTC"
fallback = ["{BACKUP}"]

[[rota.shifts]]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = 0
end = 24
clinicians = ["{CLINICIAN}"]

[acknowledge]
reactions = ["✅", "👍", "👀"]
"""

SHIPPED_RESOURCES = Path(__file__).resolve().parents[2] / "config" / "crisis_resources.toml"
WEBHOOK_SECRET = "e2e-webhook-secret"
IMMINENT_SLA_SECONDS = 3


def escalation_overrides(root: Path, webhook_port: int, server_name: str = "localhost") -> dict[str, object]:
    """The ``[escalation]`` settings of a test stack: the staff file above (its accounts on
    ``server_name``), a copy of the shipped crisis lines, a 3 s imminent SLA, fast sweeps and polls, and a webhook on a local port the
    webhook test listens on."""
    staff_file = root / "staff.toml"
    staff_file.write_text(STAFF_TOML.replace(':localhost"', f':{server_name}"'))
    # A copy of the shipped crisis lines, which tests/e2e/test_hostile_reload.py edits and mends.
    resources_file = root / "crisis_resources.toml"
    shutil.copy(SHIPPED_RESOURCES, resources_file)
    return {
        "staff_file": str(staff_file),
        "resources_file": str(resources_file),
        "sla_imminent_seconds": IMMINENT_SLA_SECONDS,
        "sweep_seconds": 1,
        "poll_seconds": 1,
        "webhook_url": f"http://127.0.0.1:{webhook_port}/hooks/hearth",
        "webhook_secret": WEBHOOK_SECRET,
    }


def room_by_alias(hs, alias: str) -> str:
    """The room an alias names, waiting for the bot to have made it."""

    def resolve() -> str | None:
        try:
            return str(hs.bot().call("GET", f"/_matrix/client/v3/directory/room/{q(alias)}")["room_id"])
        except MatrixError:
            return None

    return wait_for(resolve, timeout=30, what=f"{alias} to exist")


def staff_room(hs) -> str:
    return room_by_alias(hs, ALIAS.replace(":localhost", f":{hs.layout.server_name}"))


def staff_user(hs, user_id: str) -> User:
    """Log in as (registering if needed) a staff account from the test staff file, in the staff room."""
    user = matrix_account(hs, user_id)
    join_staff_room(hs, user)
    return user


def join_staff_room(hs, user: User) -> str:
    room = staff_room(hs)
    try:
        hs.bot().invite(room, user.user_id)
    except MatrixError as e:
        if e.status != 403:  # 403: already invited or joined
            raise
    user.join(room)
    return room


_ACCOUNTS: dict[tuple[str, str], User] = {}


def matrix_account(hs, user_id: str) -> User:
    """Log in as (registering if needed) an account of the test homeserver, outside any room; one
    login per account and homeserver (Synapse limits logins per account: a few, then one in minutes)."""
    key = (hs.layout.hs_url, user_id)
    if key not in _ACCOUNTS:
        localpart = user_id[1:].split(":", 1)[0]
        password = f"pw-{localpart}"
        token = stack.register_user(hs.layout, localpart, password) or stack.login(
            hs.layout, localpart, password
        )
        stack.exempt_from_ratelimit(hs.layout, hs.admin.token, user_id)
        _ACCOUNTS[key] = User(hs.layout.hs_url, user_id, token)
    return _ACCOUNTS[key]


def openid_token(user: User) -> dict:
    """What a Matrix client asks its homeserver for to prove who it is to Hearth."""
    return user.call("POST", f"/_matrix/client/v3/user/{q(user.user_id)}/openid/request_token", {})


def sign_in_body(user: User) -> dict:
    """The body of ``POST /api/auth/openid`` for ``user``: a fresh OpenID token and its server."""
    openid = openid_token(user)
    return {"access_token": openid["access_token"], "matrix_server_name": openid["matrix_server_name"]}


def sign_in(hs, user_id: str) -> str:
    """Sign in to Hearth with the account's Matrix identity (OpenID); returns the session token."""
    r = httpx.post(
        f"{hs.layout.hearth_url}/api/auth/openid", timeout=10, json=sign_in_body(matrix_account(hs, user_id))
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def join_private_room_with_the_bot(member: User) -> str:
    """Wait for the bot's invite to the member's private room (resources, care room), join it, return it."""

    def invite() -> str | None:
        # A fresh filter each time: Synapse caches initial-sync responses per filter for a while.
        fresh = q(json.dumps({"presence": {"types": [secrets.token_hex(4)]}}))
        rooms = member.call("GET", f"/_matrix/client/v3/sync?timeout=0&filter={fresh}")["rooms"]
        return next(iter(rooms.get("invite", {})), None)

    room = wait_for(invite, timeout=30, what="the bot's private room invite")
    member.join(room)
    return room
