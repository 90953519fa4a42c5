"""A throwaway stack per database backend: a real Synapse and the real Hearth service, in a temp dir
on free ports (never the stack `make up` runs)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge import stack
from bridge.db import make_engine
from moderation.escalation import Escalation
from spaces.models import ProvisionedRoom
from tests.conftest import PG_ADMIN_URL, _drop_pg_database, _fresh_pg_database, _pg_available
from tests.e2e.escalation_staff import MODERATOR, escalation_overrides, matrix_account, room_by_alias
from tests.e2e.matrix import SENT, MatrixError, User, new_user, wait_for


@dataclass
class Stack:
    layout: stack.StackLayout
    database_url: str
    engine: Engine
    admin: User
    _bot: User | None = None
    webhook_port: int = 0

    def member(self, prefix: str = "member") -> User:
        """A new ordinary user, exempted from rate limits (tests send faster than people do)."""
        return new_user(self.layout, prefix, exempt_with=self.admin.token)

    @property
    def settings(self) -> dict:
        return tomllib.loads(self.layout.hearth_toml.read_text())

    def bot(self) -> User:
        """The bot's account, through a separate device (the service keeps its own session)."""
        if self._bot is not None:
            return self._bot
        token = stack.login(
            self.layout,
            self.layout.bot_localpart,
            self.settings["matrix"]["bot_password"],
            device_id="TEST_" + secrets.token_hex(3),
        )
        self._bot = User(self.layout.hs_url, self.layout.bot_user_id, token)
        return self._bot

    def restart_hearth_at(self, while_down: Callable[[], None]) -> None:
        """Stop Hearth, do ``while_down`` (move the clock across a deadline), start it again."""
        stack.stop_hearth(self.layout)
        while_down()
        stack.start_hearth(self.layout)

    def restart_hearth(self, sig: int | None = None) -> None:
        if sig is None:
            stack.stop_hearth(self.layout)
        else:
            stack.stop_hearth(self.layout, sig=sig)
        stack.start_hearth(self.layout)


# HEARTH_TEST_MODEL_CACHE names a model cache kept across runs (exports are keyed by the weights' hash
# and library versions): a loaded machine then starts a stack without exporting MiniLM again.
MODEL_CACHE = (
    {"model_cache_dir": os.environ["HEARTH_TEST_MODEL_CACHE"]}
    if "HEARTH_TEST_MODEL_CACHE" in os.environ
    else {}
)


def moderation_config_copy(root: Path) -> Path:
    """``policy.toml`` and ``moderation/`` copied from the repository's config into ``root/config``."""
    shipped = Path(__file__).resolve().parents[2] / "config"
    copy = root / "config"
    copy.mkdir()
    shutil.copy(shipped / "policy.toml", copy / "policy.toml")
    shutil.copytree(shipped / "moderation", copy / "moderation")
    return copy


@contextlib.contextmanager
def running_stack(
    layout: stack.StackLayout,
    database_url: str,
    settings: dict[str, Any] | None = None,
    patience: float = 1.0,
) -> Iterator[Stack]:
    """Hearth's homeserver and Hearth on ``layout`` with the test staff file and fast timers;
    ``settings`` are merged into Hearth's (one level of tables deep). Both stopped afterwards."""
    root = layout.root
    webhook_port = stack.free_port()
    merged: dict[str, Any] = {
        "database_url": database_url,
        "matrix": {"sync_timeout_ms": 5000},
        "escalation": escalation_overrides(root, webhook_port, layout.server_name),
        # A copy of the moderation policy and rules, which tests/e2e/test_hostile_reload.py breaks and mends.
        "moderation": {
            "report_poll_seconds": 1,
            "config_dir": str(moderation_config_copy(root)),
            **MODEL_CACHE,
        },
        # Tests walk expiries forward by writing seconds here (tests/e2e/test_moderators.py).
        "clock_offset_file": str(root / "clock_offset"),
        # The OpenAPI fuzzing tries the sign-in with junk 16 times from 127.0.0.1; the tests after it
        # on the same stack still sign in from there (test_auth.py reads the limit and tests it).
        "staff_api": {"failed_sign_in_limit": "40/5minutes"},
    }
    for key, value in (settings or {}).items():
        current = merged.get(key)
        merged[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    stack.prepare(layout, merged)
    first_sent = len(SENT)
    try:
        stack.up(layout, say=lambda _msg: None, patience=patience)
        engine = make_engine(database_url)
        yield Stack(
            layout, database_url, engine, new_user(layout, "testadmin", admin=True), webhook_port=webhook_port
        )
        engine.dispose()
    finally:
        stack.down(layout, say=lambda _msg: None)
    # Reached only when every test on this stack has finished: no word any member sent while it ran
    # (ordinary, crisis, abusive, refused or not, local or over federation) is in any of its logs.
    leaks = words_in_logs(layout, SENT[first_sent:])
    assert not leaks, f"message text found in the stack's logs: {leaks[:5]}"


# Shorter bodies ("hi", "!ack 3") could be in a log by coincidence; what a test sends is longer.
LOGGED_TEXT_MIN_CHARS = 16


def stack_logs(layout: stack.StackLayout) -> dict[str, str]:
    """Every log file of a stack: Hearth's, Synapse's log and its standard output."""
    root = layout.root
    files = {p for p in root.rglob("*.log*") if p.is_file()} | {layout.hearth_log, layout.synapse_stdout}
    return {str(p.relative_to(root)): p.read_text(errors="replace") for p in files if p.exists()}


def words_in_logs(layout: stack.StackLayout, bodies: list[str]) -> list[tuple[str, str]]:
    """(log file, body) for every message body found in a log of the stack."""
    wanted = {b.strip() for b in bodies if len(b.strip()) >= LOGGED_TEXT_MIN_CHARS}
    return [(name, body[:40]) for name, text in stack_logs(layout).items() for body in wanted if body in text]


@contextlib.contextmanager
def throwaway_stack(
    root: Path, database_url: str, overrides: dict[str, Any] | None = None
) -> Iterator[Stack]:
    """:func:`running_stack` in ``root`` on free ports."""
    layout = stack.StackLayout(root=root, hs_port=stack.free_port(), hearth_port=stack.free_port())
    with running_stack(layout, database_url, overrides, patience=2.0) as hs:  # shared cores: slow loads
        yield hs


@contextlib.contextmanager
def _shared_stack(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = Path(tmp_path_factory.mktemp(f"stack-{database}"))
    pg_name = None
    if database == "sqlite":
        url = f"sqlite:///{root / 'hearth.db'}"
    else:
        if not _pg_available():
            pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
        url, pg_name = _fresh_pg_database(PG_ADMIN_URL)
    layout = stack.StackLayout(root=Path(root), hs_port=stack.free_port(), hearth_port=stack.free_port())
    try:
        with running_stack(layout, url, patience=2.0) as hs:  # shared cores: loading the models takes time
            yield hs
    finally:
        if pg_name:
            _drop_pg_database(PG_ADMIN_URL, pg_name)


# One stack per database for the whole session (per worker process under `make test`), both kept
# running: a parametrised session fixture would be torn down and started again each time the next
# test file's first test wants the other database.
@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with _shared_stack("sqlite", tmp_path_factory) as hs:
        yield hs


@pytest.fixture(scope="session")
def postgresql_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with _shared_stack("postgresql", tmp_path_factory) as hs:
        yield hs


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hearth_stack(request: pytest.FixtureRequest) -> Stack:
    """The session's running stack on SQLite, then on PostgreSQL: every test using it runs on both."""
    return request.getfixturevalue(f"{request.param}_stack")


E2E_SPACE = "e2e-moderation"


def hearth_room(
    hs,
    profile: str = "support",
    *,
    space: str = E2E_SPACE,
    prefix: str = "e2e-",
    kind: str = "discussion",
    room_version: str | None = None,
    capacity: int = 100,
) -> str:
    """A room the bot created, registered in Hearth's catalogue as one of ``space``'s support rooms
    (its alias starts with ``#<prefix>``, so a module can remove its rows afterwards) with room for
    ``capacity`` members."""
    version = {"room_version": room_version} if room_version else {}
    room = hs.bot().create_room(name=f"moderated {profile}", preset="public_chat", **version)
    with Session(hs.engine) as s:
        s.add(
            ProvisionedRoom(
                alias=f"#{prefix}{secrets.token_hex(4)}:localhost",
                room_id=room,
                space_slug=space,
                room_slug=kind,
                kind=kind,
                capacity=capacity,
                profile=profile,
                members_may_post=True,
                updated_at=datetime.now(UTC),
            )
        )
        s.commit()
    return room


def remove_catalogue_rooms(hs: Stack, where: Any = ProvisionedRoom.space_slug == E2E_SPACE) -> None:
    """Drop the catalogue rows (``where``: by default, those :func:`hearth_room` made in
    :data:`E2E_SPACE`) that a test file made: later test files share the stack, and the provisioning
    tests count the catalogue."""
    with Session(hs.engine) as s:
        for row in s.exec(select(ProvisionedRoom).where(where)):
            s.delete(row)
        s.commit()


@pytest.fixture(scope="module")
def e2e_rooms_removed_afterwards(hearth_stack: Stack) -> Iterator[None]:
    """For a test file that makes rooms with :func:`hearth_room`: removes their rows when it ends."""
    yield
    remove_catalogue_rooms(hearth_stack)


def bot_says(hs, reader: User, room: str, pred, what: str, timeout: float = 30) -> dict:
    """The newest event from the bot in ``room`` that satisfies ``pred``."""

    def find() -> dict | None:
        for ev in reader.messages(room, limit=50):
            if ev.get("sender") == hs.layout.bot_user_id and pred(ev):
                return ev
        return None

    return wait_for(find, timeout=timeout, what=what)


MOD_ALIAS = "#hearth-moderators:localhost"


def moderators_room(hs) -> str:
    return room_by_alias(hs, MOD_ALIAS.replace(":localhost", f":{hs.layout.server_name}"))


def moderator(hs, user_id: str = MODERATOR) -> User:
    """A moderator (or admin) of the test staff file, joined to the moderators' room."""
    user = matrix_account(hs, user_id)
    room = moderators_room(hs)
    try:
        hs.bot().invite(room, user.user_id)
    except MatrixError as e:
        if e.status != 403:  # already invited or joined
            raise
    user.join(room)
    return user


def answered(hs, user: User, room: str, content: dict) -> str:
    """Send ``content`` in ``room`` and return the text of the bot's reply to it."""
    sent = user.send(room, content)
    reply = bot_says(
        hs,
        user,
        room,
        lambda ev: (
            ((ev.get("content") or {}).get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id")
            == sent
        ),
        f"the bot's answer to {content.get('body')!r}",
    )
    return str(reply["content"]["body"])


def command(hs, mod: User, text: str, *, reply_to: str | None = None) -> str:
    """Send a command in the moderators' room and return the bot's reply text."""
    content: dict = {"msgtype": "m.text", "body": text}
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return answered(hs, mod, moderators_room(hs), content)


def wait_escalated(hs: Stack, event_id: str, what: str) -> Escalation:
    """The escalation a crisis message raised (waiting for it)."""

    def find() -> Escalation | None:
        with Session(hs.engine) as s:
            return s.exec(select(Escalation).where(Escalation.first_event_id == event_id)).first()

    return wait_for(find, timeout=30, what=what)


def resolve_open_escalations(hs: Stack) -> None:
    """Close every escalation a test module left open, so its SLA re-pages stop before the next
    module (which may count the bot's events) runs on the same stack."""
    from moderation import escalation as dom

    actor = "@e2e-teardown:localhost"
    with Session(hs.engine) as s:
        for esc in dom.list_escalations(s, status=list(dom.ACTIVE_STATUSES), limit=1000):
            dom.resolve(
                s,
                esc.id,
                actor=actor,
                staff=[actor],
                outcome="other",
                now=datetime.now(UTC),
                note="closed by the end-to-end test teardown",
            )
        s.commit()


# --- the staff pages in a real browser (Debian's chromium through Playwright, never a download) ---

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is missing: `apt-get install -y chromium` (.ci/run does it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def sign_in_page(browser, hs, user_id: str):
    matrix_account(hs, user_id)  # registered, password pw-<localpart>
    localpart = user_id[1:].split(":", 1)[0]
    page = browser.new_context().new_page()
    page.goto(f"{hs.layout.hearth_url}/staff")  # moderators and admins go on to /mod
    page.fill("#username", localpart)
    page.fill("#password", f"pw-{localpart}")
    page.click("button[type=submit]")
    return page
