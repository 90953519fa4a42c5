"""Provisioning end to end: themes -> plan -> apply against a real Synapse, verified through
Synapse's admin API (never Hearth's own records), with the real Hearth service answering the gate.

The tests share one stack and run in file order: the first applies every theme from empty, the
others change a copy of the themes and put the shipped themes back afterwards.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sqlmodel import Session, select

from bridge.capacity import CATALOGUE_TTL_SECONDS
from bridge.clock import SystemClock
from bridge.provisioning import ApplyResult, Provisioner, login_gateway, managed_aliases
from config.settings import load_settings
from spaces.models import ProvisionedRoom, ProvisionedSpace
from spaces.plan import GUIDELINES_EVENT, MANAGED_EVENT, PIN_EVENT
from spaces.scene import HINT_KEY, SCENE_EVENT, WORLD_EVENT
from spaces.sessions import store as session_store
from spaces.staff import DEFAULT_STAFF_FILE, load_staff
from spaces.themes import DEFAULT_THEMES_DIR, Theme, load_themes, room_alias, space_alias
from tests.e2e.matrix import MatrixError, User, q, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SERVER = "localhost"
THEMES = load_themes()


def staff_of(hs):  # type: ignore[no-untyped-def]
    """The staff the stack's settings name (the e2e stack uses its own staff file)."""
    settings = load_settings(hs.layout.hearth_toml)
    return load_staff(settings.escalation.staff_file or DEFAULT_STAFF_FILE)


# --------------------------------------------------------------------------- helpers


def apply(hs, themes_dir: Path = DEFAULT_THEMES_DIR, only: str | None = None) -> ApplyResult:  # type: ignore[no-untyped-def]
    """Run the executor in-process, as `hearth spaces apply` does, against the test stack
    (``only``: just that theme, as a stack of one space)."""
    settings = load_settings(hs.layout.hearth_toml)

    async def go() -> ApplyResult:
        gateway = await login_gateway(
            settings.matrix.homeserver_url,
            settings.matrix.bot_user_id,
            settings.matrix.bot_password.get_secret_value(),
            hs.layout.root / "provision_session.json",
        )
        try:
            provisioner = Provisioner(
                gateway,
                hs.engine,
                SystemClock(),
                themes=[t for t in load_themes(themes_dir) if only in (None, t.slug)],
                staff=staff_of(hs),
                server_name=settings.matrix.server_name,
            )
            return await provisioner.apply()
        finally:
            await gateway.close()

    return asyncio.run(go())


def hearth_cli(hs, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(hs.layout.hearth_toml), "spaces", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def admin_state(hs, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Current state of a room through Synapse's admin API: (type, state_key) -> content."""
    events = hs.admin.call("GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/state")["state"]
    return {(e["type"], e["state_key"]): e["content"] for e in events}


def resolve(user: User, alias: str) -> str:
    return str(user.call("GET", f"/_matrix/client/v3/directory/room/{q(alias)}")["room_id"])


def download(user: User, mxc: str) -> bytes:
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    r = httpx.get(
        f"{user.hs}/_matrix/client/v1/media/download/{server}/{media_id}",
        timeout=30,
        headers={"Authorization": f"Bearer {user.token}"},
    )
    r.raise_for_status()
    return r.content


def managed_room_ids(hs) -> list[str]:  # type: ignore[no-untyped-def]
    return [resolve(hs.admin, a) for a in managed_aliases(THEMES, SERVER)]


def _sync_filter(room_ids: list[str], limit: int) -> str:
    return json.dumps(
        {
            "presence": {"types": []},
            "account_data": {"types": []},
            "room": {
                "rooms": room_ids,
                "timeline": {"limit": limit},
                "state": {"types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
        }
    )


def sync_token(bot: User, room_ids: list[str]) -> str:
    body = bot.call(
        "GET", f"/_matrix/client/v3/sync?timeout=0&filter={q(_sync_filter(room_ids, 0))}", timeout=120
    )
    return str(body["next_batch"])


def events_since(bot: User, room_ids: list[str], since: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event the homeserver delivered in ``room_ids`` since ``since`` (room ID, event)."""
    body = bot.call(
        "GET",
        f"/_matrix/client/v3/sync?timeout=0&since={q(since)}&filter={q(_sync_filter(room_ids, 100))}",
        timeout=60,
    )
    return [
        (rid, ev)
        for rid, r in body.get("rooms", {}).get("join", {}).items()
        for ev in r.get("timeline", {}).get("events", [])
    ]


def copy_themes(tmp_path: Path) -> Path:
    target = tmp_path / "themes"
    shutil.copytree(DEFAULT_THEMES_DIR, target)
    return target


def edit_theme(themes_dir: Path, slug: str, old: str, new: str, after: str | None = None) -> None:
    """Replace the first ``old`` (a regex) after the text ``after`` in a theme file."""
    path = themes_dir / f"{slug}.toml"
    text = path.read_text()
    start = text.index(after) if after else 0
    head, tail = text[:start], text[start:]
    tail, n = re.subn(old, new, tail, count=1)
    assert n == 1, f"{old!r} not found in {path}"
    path.write_text(head + tail)


def theme(slug: str) -> Theme:
    return next(t for t in THEMES if t.slug == slug)


@pytest.fixture(scope="module")
def first_apply(hearth_stack) -> ApplyResult:  # type: ignore[no-untyped-def]
    """Apply every shipped theme to the (space-less) stack once for the whole module."""
    assert (
        hearth_stack.admin.call("GET", f"/_synapse/admin/v1/rooms?search_term={q('Anxiety')}")["rooms"] == []
    ), "the stack already has spaces: this module must apply from empty"
    return apply(hearth_stack)


# --------------------------------------------------------------------------- tests


def test_apply_from_empty_builds_every_space_and_room(hearth_stack, first_apply) -> None:  # type: ignore[no-untyped-def]
    hs, result = hearth_stack, first_apply
    counts = result.plan.counts()
    assert counts["create_space"] == len(THEMES)
    rooms_total = sum(len(t.rooms) for t in THEMES)
    # The staff rooms may exist already (the escalation and moderation desks create theirs on
    # demand): reconciled by alias.
    assert rooms_total <= counts["create_room"] <= rooms_total + 2
    assert result.tally.uploads > 0
    schema = httpx.get(f"{hs.layout.hearth_url}/schemas/room-scene.json", timeout=10).json()
    validator = jsonschema.Draft202012Validator(schema)
    bot = hs.layout.bot_user_id
    staff_ids = staff_of(hs).all_ids
    downloaded: dict[str, bytes] = {}

    def check_power(pl: dict[str, Any], events_default: int) -> None:
        assert pl["users"][bot] == 100
        for user in staff_ids:
            assert pl["users"][user] == 50, f"{user} should be 50"
        assert pl["users_default"] == 0
        assert pl["events_default"] == events_default
        assert pl["events"][WORLD_EVENT] == 50

    for t in THEMES:
        s_alias = space_alias(t, SERVER)
        space_id = resolve(hs.admin, s_alias)
        details = hs.admin.call("GET", f"/_synapse/admin/v1/rooms/{q(space_id)}")
        assert details["room_type"] == "m.space"
        assert details["canonical_alias"] == s_alias
        assert details["version"] == t.room_version
        space = admin_state(hs, space_id)
        assert space[("m.room.guest_access", "")]["guest_access"] == "forbidden"
        check_power(space[("m.room.power_levels", "")], 100)
        assert space[(MANAGED_EVENT, "")]["theme"] == t.slug
        children = {k: c for (ty, k), c in space.items() if ty == "m.space.child"}
        assert len(children) == len(t.rooms)

        for order, room in enumerate(t.rooms):
            r_alias = room_alias(t, room, SERVER)
            room_id = resolve(hs.admin, r_alias)
            child = children[room_id]
            assert child["via"] == [SERVER]
            assert child["order"] == f"{order:02d}"
            assert child["suggested"] is room.suggested
            assert child[HINT_KEY] == {"preset": room.scene.preset, "capacity": room.scene.capacity}

            info = hs.admin.call("GET", f"/_synapse/admin/v1/rooms/{q(room_id)}")
            assert info["canonical_alias"] == r_alias
            assert info["version"] == t.room_version
            assert not info["encryption"]
            st = admin_state(hs, room_id)
            assert st[("m.room.create", "")]["room_version"] == t.room_version
            assert st[("m.space.parent", space_id)] == {"via": [SERVER], "canonical": True}
            rules = st[("m.room.join_rules", "")]
            if room.join_rule == "knock":
                assert rules["join_rule"] == "knock"
            else:
                assert rules["join_rule"] == room.join_rule
                assert rules["allow"] == [{"type": "m.room_membership", "room_id": space_id}]
            assert st[("m.room.guest_access", "")]["guest_access"] == "forbidden"
            assert st[("m.room.topic", "")]["topic"] == " ".join(room.topic.split())
            check_power(st[("m.room.power_levels", "")], 0 if room.members_may_post else 50)

            world = st[(WORLD_EVENT, "")]
            assert "script_url" not in world
            assert world["scene_url"].startswith("mxc://")
            assert world["scene_preview_url"].startswith("mxc://")
            for url in (world["scene_url"], world["scene_preview_url"]):
                if url not in downloaded:
                    downloaded[url] = download(hs.admin, url)
            assert downloaded[world["scene_url"]][:4] == b"glTF"
            assert downloaded[world["scene_preview_url"]][:8] == b"\x89PNG\r\n\x1a\n"

            scene = st[(SCENE_EVENT, "")]
            validator.validate(scene)
            assert scene["capacity"] == room.scene.capacity
            assert scene["preset"] == room.scene.preset

            if room.kind == "welcome":
                marker = st[(GUIDELINES_EVENT, "")]
                assert marker["event_id"] in st[("m.room.pinned_events", "")]["pinned"]
            # What the topics promise is pinned: the schedule, the crisis lines, the guide.
            promised = {"group-session": "schedule", "resources": "crisis-lines"}.get(room.kind)
            for key in [promised] * bool(promised) + ["guide"] * (room.guide is not None):
                assert st[(PIN_EVENT, key)]["event_id"] in st[("m.room.pinned_events", "")]["pinned"], key

    # Each distinct scene was uploaded once and is shared by every room that uses it.
    assert len([u for u in downloaded if downloaded[u][:4] == b"glTF"]) <= 25

    staff_room = resolve(hs.admin, f"#hearth-staff:{SERVER}")
    st = admin_state(hs, staff_room)
    assert st[("m.room.join_rules", "")]["join_rule"] == "invite"
    assert ("m.room.encryption", "") not in st
    staff = staff_of(hs)
    for user in staff.clinician_ids:
        assert st[("m.room.member", user)]["membership"] in ("invite", "join")
    # Clinical alerts are for clinicians: a moderator let in by an earlier test is removed by the apply.
    for user in staff.moderation_ids:
        assert st.get(("m.room.member", user), {}).get("membership") in (None, "leave")
    mods = admin_state(hs, resolve(hs.admin, f"#hearth-moderators:{SERVER}"))
    assert mods[("m.room.join_rules", "")]["join_rule"] == "invite"
    for user in staff.moderation_ids:
        assert mods[("m.room.member", user)]["membership"] in ("invite", "join")
    for user in staff.clinician_ids:
        assert mods.get(("m.room.member", user), {}).get("membership") in (None, "leave")

    # The catalogue records what was created (the gate and the directory read it).
    with Session(hs.engine) as s:
        spaces = {r.theme_slug: r for r in s.exec(select(ProvisionedSpace))}
        rooms = {r.alias: r for r in s.exec(select(ProvisionedRoom))}
    assert {t.slug: t.version for t in THEMES} == {k: v.theme_version for k, v in spaces.items()}
    assert len(rooms) == sum(len(t.rooms) for t in THEMES)
    # Every theme's sessions are in the database with at least one date to come (`make up` applies).
    with Session(hs.engine) as s:
        upcoming = {row.space for row, _ in session_store.upcoming(s, datetime.now(UTC))}
    assert upcoming >= {t.slug for t in THEMES}


def test_second_apply_changes_nothing_and_sends_no_events(hearth_stack, first_apply) -> None:  # type: ignore[no-untyped-def]
    hs = hearth_stack
    ids = managed_room_ids(hs)
    bot = hs.bot()
    since = sync_token(bot, ids)
    result = apply(hs)
    assert result.changes == 0, result.plan.render()
    assert result.plan.actions == []
    assert result.tally.events_sent == 0
    assert result.tally.uploads == 0
    assert not {"create_room", "put_state", "send", "invite", "upload"} & set(result.tally.requests)
    time.sleep(1.0)
    assert events_since(bot, ids, since) == []

    plan = hearth_cli(hs, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "No changes" in plan.stdout
    assert "0 change(s) to apply" in plan.stdout


def test_a_changed_topic_is_exactly_one_state_event(hearth_stack, first_apply, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hs = hearth_stack
    t = theme("grief-loss")
    room = t.room_of_kind("discussion")
    themes_dir = copy_themes(tmp_path)
    edit_theme(themes_dir, t.slug, re.escape(room.topic), "A changed topic for the end-to-end test.")
    ids = managed_room_ids(hs)
    bot = hs.bot()
    since = sync_token(bot, ids)
    try:
        result = apply(hs, themes_dir)
        assert result.applied == Counter({"set_state": 1})
        assert result.tally.events_sent == 1
        events = wait_for(lambda: events_since(bot, ids, since), what="the topic change to arrive")
        time.sleep(0.5)
        events = events_since(bot, ids, since)
        assert len(events) == 1
        room_id, ev = events[0]
        assert room_id == resolve(hs.admin, room_alias(t, room, SERVER))
        assert ev["type"] == "m.room.topic"
        assert ev["content"]["topic"] == "A changed topic for the end-to-end test."
    finally:
        restored = apply(hs)
    assert restored.applied == Counter({"set_state": 1})


def test_a_member_outside_the_space_cannot_join_its_rooms(hearth_stack, first_apply) -> None:  # type: ignore[no-untyped-def]
    hs = hearth_stack
    t = theme("carers")
    room_id = resolve(hs.admin, room_alias(t, t.room_of_kind("discussion"), SERVER))
    member = hs.member()
    with pytest.raises(MatrixError) as refused:
        member.join(room_id)
    assert refused.value.status == 403
    member.join(resolve(hs.admin, space_alias(t, SERVER)))
    assert member.join(room_id) == room_id


def test_hierarchy_shows_each_rooms_hint_before_joining(hearth_stack, first_apply) -> None:  # type: ignore[no-untyped-def]
    hs = hearth_stack
    t = theme("new-parents")
    space_id = resolve(hs.admin, space_alias(t, SERVER))
    member = hs.member()
    body = member.call("GET", f"/_matrix/client/v1/rooms/{q(space_id)}/hierarchy?max_depth=1")
    root = next(r for r in body["rooms"] if r["room_id"] == space_id)
    hints = [c["content"][HINT_KEY] for c in root["children_state"]]
    assert len(hints) == len(t.rooms)
    assert {(h["preset"], h["capacity"]) for h in hints} == {
        (r.scene.preset, r.scene.capacity) for r in t.rooms
    }


def test_a_join_beyond_capacity_is_refused_by_the_gate(hearth_stack, first_apply, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hs = hearth_stack
    t = theme("anxiety-panic")
    room = t.room("quiet")
    themes_dir = copy_themes(tmp_path)
    edit_theme(themes_dir, t.slug, r"capacity = \d+", "capacity = 2", after='slug = "quiet"')
    try:
        result = apply(hs, themes_dir)
        # The scene event and the space's child hint carry the capacity: two state events.
        assert sum(result.applied.values()) == 2
        time.sleep(CATALOGUE_TTL_SECONDS + 0.3)  # the gate re-reads the catalogue
        space_id = resolve(hs.admin, space_alias(t, SERVER))
        room_id = resolve(hs.admin, room_alias(t, room, SERVER))
        members = [hs.member() for _ in range(3)]
        for m in members:
            m.join(space_id)
        members[0].join(room_id)
        members[1].join(room_id)
        with pytest.raises(MatrixError) as refused:
            members[2].join(room_id)
        assert refused.value.status == 403
        assert refused.value.body["errcode"] == "M_FORBIDDEN"
        assert refused.value.body.get("org.hearth.reason") == "capacity"
        joined = hs.admin.call("GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/members")["members"]
        assert members[2].user_id not in joined
    finally:
        apply(hs)


def test_rooms_no_theme_names_are_reported_never_deleted(hearth_stack, first_apply, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hs = hearth_stack
    t = theme("chronic-pain-rehab")
    themes_dir = copy_themes(tmp_path)
    (themes_dir / f"{t.slug}.toml").unlink()
    result = apply(hs, themes_dir)
    assert result.changes == 0
    orphans = [c for c in result.plan.changes if c.kind == "orphan"]
    assert {c.alias for c in orphans} == {space_alias(t, SERVER)} | {
        room_alias(t, r, SERVER) for r in t.rooms
    }
    for alias in (space_alias(t, SERVER), room_alias(t, t.rooms[0], SERVER)):
        room_id = resolve(hs.admin, alias)
        assert (MANAGED_EVENT, "") in admin_state(hs, room_id)
    assert apply(hs).changes == 0


def test_a_broken_theme_refuses_the_whole_apply(hearth_stack, first_apply, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hs = hearth_stack
    themes_dir = copy_themes(tmp_path)
    valid = theme("carers").room_of_kind("check-in")
    # A valid change in one file and an invalid value in another: neither may reach the server.
    edit_theme(themes_dir, "carers", re.escape(valid.topic), "This topic must never be applied.")
    edit_theme(themes_dir, "trauma-ptsd", r"capacity = \d+", "capacity = 0", after="[[rooms]]")
    run = hearth_cli(hs, "apply", "--themes", str(themes_dir))
    assert run.returncode == 2
    assert "trauma-ptsd.toml" in run.stderr
    assert "rooms[0].scene.capacity" in run.stderr
    assert "greater than or equal to 2" in run.stderr
    assert "nothing applied" in run.stderr
    room_id = resolve(hs.admin, room_alias(theme("carers"), valid, SERVER))
    assert admin_state(hs, room_id)[("m.room.topic", "")]["topic"] == " ".join(valid.topic.split())


def test_directory_lists_spaces_with_presets_and_capacity(hearth_stack, first_apply) -> None:  # type: ignore[no-untyped-def]
    body = httpx.get(f"{hearth_stack.layout.hearth_url}/api/spaces", timeout=10).json()
    slugs = {s["slug"] for s in body["spaces"]}
    assert {t.slug for t in THEMES} <= slugs
    anxiety = next(s for s in body["spaces"] if s["slug"] == "anxiety-panic")
    assert [r["slug"] for r in anxiety["rooms"]] == [r.slug for r in theme("anxiety-panic").rooms]
    assert all(r["preset"] and r["capacity"] >= 2 for r in anxiety["rooms"])
