"""Two homeservers on loopback that federate: Hearth's (``127.0.0.1:PORT``, with the gate module and
Hearth beside it) and a plain Synapse (``127.0.0.2:PORT``, no module), each with TLS on its federation
port and a self-signed certificate. One pair per module: starting it costs about 30 s.

Hearth's server provisions one theme (trauma and PTSD: restricted rooms and a knock-to-join group
session), and the remote server's users join it the way any federated user would, by alias.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge import stack
from spaces.themes import Theme, load_themes, room_alias, space_alias
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.escalation_staff import CLINICIAN, MODERATOR
from tests.e2e.matrix import MatrixError, User, new_user, q, wait_for
from tests.e2e.test_provisioning import apply

THEME = "trauma-ptsd"
# Two homeservers and Hearth start together on cores shared with other work: each may take minutes
# (a first Synapse start creates its whole schema).
PATIENCE = 3.0


@dataclass
class RemoteServer:
    """The second homeserver: a plain Synapse, no gate, no Hearth."""

    layout: stack.StackLayout
    admin: User

    def member(self, prefix: str = "visitor") -> User:
        return new_user(self.layout, prefix, exempt_with=self.admin.token)

    def stop(self) -> None:
        stack.stop_synapse(self.layout)

    def start(self) -> None:
        stack.start_synapse(self.layout, timeout=90 * PATIENCE)


@dataclass
class Federation:
    hearth: Stack
    remote: RemoteServer
    theme: Theme
    space_id: str
    rooms: dict[str, str]  # room slug -> room ID on Hearth's server

    @property
    def server(self) -> str:
        return self.hearth.layout.server_name

    @property
    def clinician(self) -> str:
        """The on-call clinician of the test staff file, on Hearth's server."""
        return CLINICIAN.replace(":localhost", f":{self.server}")

    @property
    def moderator(self) -> str:
        return MODERATOR.replace(":localhost", f":{self.server}")

    def space_alias(self) -> str:
        return space_alias(self.theme, self.server)

    def room_alias(self, slug: str) -> str:
        return room_alias(self.theme, self.theme.room(slug), self.server)

    def visitor(self, *rooms: str, prefix: str = "visitor") -> User:
        """A new user of the remote server who joined the space and ``rooms`` (by alias, over federation)."""
        user = self.remote.member(prefix)
        user.join(self.space_alias())
        bot = self.hearth.bot()
        wait_for(
            lambda: membership(bot, self.space_id, user.user_id) == "join",
            timeout=20,
            what=f"{user.user_id}'s join to the space on Hearth's server",
        )
        for slug in rooms:
            # Hearth's server authorises a restricted join by the space membership it holds; right
            # after the space join it may not have it cached yet ("You do not belong to any of the
            # required rooms/spaces"): the join is asked again, as a client would.
            wait_for(
                lambda slug=slug: _joined(user, self.room_alias(slug)), timeout=20, what=f"joining {slug}"
            )
            wait_for(
                lambda slug=slug: membership(bot, self.rooms[slug], user.user_id) == "join",
                timeout=20,
                what=f"{user.user_id}'s join to {slug} on Hearth's server",
            )
        return user


def _joined(user: User, alias: str) -> bool:
    try:
        user.join(alias)
    except MatrixError as e:
        if e.status == 403 and "required rooms" in str(e.body.get("error", "")):
            return False
        raise
    return True


def membership(viewer: User, room_id: str, user_id: str) -> str | None:
    """``user_id``'s membership in ``room_id`` as ``viewer``'s homeserver sees it."""
    try:
        ev = viewer.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.member/{q(user_id)}")
    except MatrixError:
        return None
    return str(ev.get("membership")) if ev else None


def own_membership(user: User, room_id: str) -> str | None:
    """``user``'s membership in ``room_id`` as their own homeserver tells them (``/sync``, left and
    banned rooms included: a banned user may no longer read the room's state)."""
    fresh = json.dumps({"room": {"include_leave": True}, "presence": {"types": [secrets.token_hex(4)]}})
    rooms = user.call("GET", f"/_matrix/client/v3/sync?timeout=0&filter={q(fresh)}")["rooms"]
    for section in ("join", "leave"):
        room = rooms.get(section, {}).get(room_id)
        if room is None:
            continue
        events = room.get("state", {}).get("events", []) + room.get("timeline", {}).get("events", [])
        mine = [e for e in events if e.get("type") == "m.room.member" and e.get("state_key") == user.user_id]
        if mine:
            return str(mine[-1]["content"]["membership"])
    return None


def federation_layout(root: Path, address: str) -> stack.StackLayout:
    root.mkdir(parents=True, exist_ok=True)
    port = stack.free_port()
    return stack.StackLayout(
        root=root,
        hs_port=stack.free_port(),
        hearth_port=stack.free_port(),
        server_name=f"{address}:{port}",
        federation_port=port,
        federation_address=address,
    )


@contextlib.contextmanager
def remote_server(root: Path) -> Iterator[RemoteServer]:
    layout = federation_layout(root, "127.0.0.2")
    stack.prepare(layout, gate_enabled=False)  # a plain Synapse (its unused hearth.toml stays behind)
    try:
        stack.start_synapse(layout, timeout=90 * PATIENCE)
        yield RemoteServer(layout, new_user(layout, "remoteadmin", admin=True))
    finally:
        stack.stop_synapse(layout)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("federation")
    theme = next(t for t in load_themes() if t.slug == THEME)
    hearth_layout = federation_layout(root / "hearth", "127.0.0.1")
    with (
        remote_server(root / "remote") as remote,
        # A generous gate budget: these tests are about what the gate decides for federated events,
        # on a machine shared with other work (past the budget the gate fails open and the bot
        # redacts after delivery, which tests/e2e covers).
        running_stack(
            hearth_layout,
            f"sqlite:///{root / 'hearth' / 'hearth.db'}",
            {"gate": {"budget_ms": 5000}},
            patience=PATIENCE,
        ) as hs,
    ):
        for attempt in range(3):  # plan/apply is idempotent: a request that timed out is applied again
            try:
                apply(hs, only=THEME)
                break
            except Exception:
                if attempt == 2:
                    raise
        bot = hs.bot()

        def resolve(alias: str) -> str:
            return str(bot.call("GET", f"/_matrix/client/v3/directory/room/{q(alias)}")["room_id"])

        yield Federation(
            hs,
            remote,
            theme,
            resolve(space_alias(theme, hearth_layout.server_name)),
            {r.slug: resolve(room_alias(theme, r, hearth_layout.server_name)) for r in theme.rooms},
        )
