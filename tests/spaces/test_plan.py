import dataclasses
import html

import pytest

from config.ids import RoomAlias, RoomID
from spaces.plan import (
    GUIDELINES_EVENT,
    Observed,
    ObservedRoom,
    PlanError,
    TaggedRoom,
    build_plan,
    desired_state,
    guidelines_html,
    guidelines_message,
    power_levels,
    refs_in,
)
from spaces.scene import HINT_KEY, SCENE_EVENT, WORLD_EVENT
from spaces.staff import StaffMember
from spaces.themes import DEFAULT_THEMES_DIR, load_themes
from tests.spaces.conftest import BOT, SERVER, fake_media, managed_aliases
from tests.spaces.fake_homeserver import FakeHomeserver


def plan_for(themes, staff, media, observed, schedules=None):
    return build_plan(
        themes, observed, bot=BOT, staff=staff, server_name=SERVER, media=media, schedules=schedules
    )


def applied(themes, staff, media) -> FakeHomeserver:
    hs = FakeHomeserver()
    hs.apply(plan_for(themes, staff, media, Observed()))
    return hs


def test_plan_from_empty_creates_everything(themes, staff, media):
    plan = plan_for(themes, staff, media, Observed())
    counts = plan.counts()
    rooms = sum(len(t.rooms) for t in themes)
    assert counts["create_space"] == len(themes)
    assert counts["create_room"] == rooms + 2  # + the clinicians' and the moderators' rooms
    assert counts["link_child"] == rooms  # children link forward, after the rooms exist
    pins = sum(
        (r.kind in ("welcome", "resources")) + (r.guide is not None) for t in themes for r in t.rooms
    )  # guidelines, crisis lines, quiet rooms' guides (schedules only when given)
    assert counts["pin"] == pins
    assert "set_state" not in counts
    assert "orphan" not in counts
    # creations come first; the staff room before anything else; each space before its rooms
    kinds = [c.kind for c in plan.changes]
    assert kinds.index("link_child") > max(i for i, k in enumerate(kinds) if k.startswith("create"))
    assert plan.changes[0].alias == f"#hearth-staff:{SERVER}"
    aliases = [c.alias for c in plan.changes if c.kind.startswith("create")]
    for theme in themes:
        assert aliases.index(f"#{theme.slug}:{SERVER}") < aliases.index(f"#{theme.slug}-welcome:{SERVER}")
    assert "create_space" in plan.render()
    assert "Plan:" in plan.render()


def test_created_rooms_follow_the_rules(themes, staff, media):
    hs = applied(themes, staff, media)
    mods, clins = staff.moderator_ids, staff.clinician_ids
    for theme in themes:
        space_id = hs.aliases[f"#{theme.slug}:{SERVER}"]
        space = hs.rooms[space_id]
        assert space[("m.room.create", "")]["type"] == "m.space"
        assert space[("m.room.create", "")]["room_version"] == "10"
        pl = space[("m.room.power_levels", "")]
        assert pl["events_default"] == 100
        assert pl["users"][BOT] == 100
        assert pl["users_default"] == 0
        assert all(pl["users"][u] == 50 for u in mods + clins)
        assert space[("m.room.guest_access", "")] == {"guest_access": "forbidden"}
        for order, room in enumerate(theme.rooms):
            alias = f"#{theme.slug}-{room.slug}:{SERVER}"
            room_id = hs.aliases[alias]
            state = hs.rooms[room_id]
            child = space[("m.space.child", room_id)]
            assert child["via"] == [SERVER]
            assert child["order"] == f"{order:02d}"
            assert child["suggested"] is room.suggested
            assert child[HINT_KEY] == {"preset": room.scene.preset, "capacity": room.scene.capacity}
            assert state[("m.space.parent", space_id)] == {"via": [SERVER], "canonical": True}
            assert state[("m.room.canonical_alias", "")] == {"alias": alias}
            assert state[("m.room.topic", "")]["topic"] == room.topic
            assert state[("m.room.guest_access", "")] == {"guest_access": "forbidden"}
            assert state[("m.room.history_visibility", "")] == {"history_visibility": room.history_visibility}
            join = state[("m.room.join_rules", "")]
            if room.join_rule == "knock":
                assert join == {"join_rule": "knock"}
            else:
                assert join == {
                    "join_rule": room.join_rule,
                    "allow": [{"type": "m.room_membership", "room_id": space_id}],
                }
            pl = state[("m.room.power_levels", "")]
            assert pl["users"][BOT] == 100
            assert all(pl["users"][u] == 50 for u in mods + clins)
            assert pl["users_default"] == 0
            assert pl["events_default"] == (0 if room.members_may_post else 50)
            assert pl["events"][WORLD_EVENT] == 50
            assert pl["events"][SCENE_EVENT] == 50
            assert "script_url" not in state[(WORLD_EVENT, "")]
            assert state[(SCENE_EVENT, "")]["capacity"] == room.scene.capacity
            assert not refs_in(state), alias
        welcome = hs.rooms[hs.aliases[f"#{theme.slug}-welcome:{SERVER}"]]
        assert welcome[("m.room.pinned_events", "")]["pinned"] == [
            welcome[(GUIDELINES_EVENT, "")]["event_id"]
        ]
    staff_room = hs.rooms[hs.aliases[f"#hearth-staff:{SERVER}"]]
    assert staff_room[("m.room.join_rules", "")] == {"join_rule": "invite"}
    assert ("m.room.encryption", "") not in staff_room
    # Clinical alerts stay with clinicians; moderators (and admins) have their own room.
    assert {u for (t, u), c in staff_room.items() if t == "m.room.member"} == set(staff.clinician_ids)
    assert set(staff_room[("m.room.power_levels", "")]["users"]) == {*staff.clinician_ids, BOT}
    mod_room = hs.rooms[hs.aliases[f"#hearth-moderators:{SERVER}"]]
    moderators = {*staff.moderator_ids, *(a.user_id for a in staff.admins)}
    assert {u for (t, u), c in mod_room.items() if t == "m.room.member"} == moderators
    assert not moderators & set(staff.clinician_ids)
    assert mod_room[("m.room.join_rules", "")] == {"join_rule": "invite"}
    assert ("m.room.encryption", "") not in mod_room


def test_staff_of_another_role_leave_the_staff_room_and_strangers_are_reported(themes, staff, media):
    """A deployment from before the split has moderators in the clinicians' room: they are removed;
    someone who is not staff at all is reported, never removed by provisioning."""
    hs = applied(themes, staff, media)
    staff_id = hs.aliases[f"#hearth-staff:{SERVER}"]
    moderator = staff.moderator_ids[0]
    hs.rooms[staff_id][("m.room.member", moderator)] = {"membership": "join"}
    hs.rooms[staff_id][("m.room.member", "@supervisor:localhost")] = {"membership": "join"}
    plan = plan_for(themes, staff, media, hs.observe(managed_aliases(themes)))
    assert [(c.kind, c.state_key) for c in plan.changes] == [("kick", moderator)]
    assert any("@supervisor:localhost" in n for n in plan.notes)
    hs.apply(plan)
    assert hs.rooms[staff_id][("m.room.member", moderator)] == {"membership": "leave"}
    assert plan_for(themes, staff, media, hs.observe(managed_aliases(themes))).actions == []


def test_applying_twice_changes_nothing(themes, staff, media):
    hs = applied(themes, staff, media)
    plan = plan_for(themes, staff, media, hs.observe(managed_aliases(themes)))
    assert len(plan.changes) == 0, plan.render()
    assert plan.render().startswith("No changes")


def test_observed_equal_to_desired_gives_no_changes(themes, staff, media):
    """Build the snapshot straight from desired_state (room IDs known), no fake apply involved."""
    ids = {a: RoomID(f"!{i}:{SERVER}") for i, a in enumerate(managed_aliases(themes))}
    skeleton = Observed(rooms={a: ObservedRoom(rid) for a, rid in ids.items()})
    desired = desired_state(themes, skeleton, bot=BOT, staff=staff, server_name=SERVER, media=media)
    rooms = {}
    for room in desired:
        state = {k: dict(v) for k, v in room.state.items()}
        for user in room.invite:
            state[("m.room.member", user)] = {"membership": "join"}
        for i, pin in enumerate(room.pins):
            state[pin.marker] = {"sha256": pin.sha256, "event_id": f"$p{i}"}
        if room.pins:
            state[("m.room.pinned_events", "")] = {"pinned": [f"$p{i}" for i in range(len(room.pins))]}
        rooms[room.alias] = ObservedRoom(ids[room.alias], state, room.room_version)
    plan = plan_for(themes, staff, media, Observed(rooms=rooms))
    assert plan.changes == []


def test_changed_topic_gives_exactly_one_set_state(themes, staff, media, tmp_path):
    hs = applied(themes, staff, media)
    for theme in themes:
        (tmp_path / f"{theme.slug}.toml").write_text(
            (DEFAULT_THEMES_DIR / f"{theme.slug}.toml").read_text(encoding="utf-8"),
            encoding="utf-8",
        )
    path = tmp_path / "grief-loss.toml"
    text = path.read_text(encoding="utf-8")
    old = 'topic = "A quiet place to sit, remember and be with others without needing to talk."'
    path.write_text(text.replace(old, 'topic = "A quiet place to sit and remember."'), encoding="utf-8")
    changed = load_themes(tmp_path)
    plan = plan_for(changed, staff, media, hs.observe(managed_aliases(changed)))
    assert len(plan.changes) == 1, plan.render()
    change = plan.changes[0]
    assert (change.kind, change.alias, change.event_type, change.state_key) == (
        "set_state",
        f"#grief-loss-quiet:{SERVER}",
        "m.room.topic",
        "",
    )
    assert change.content is not None
    assert change.content["topic"] == "A quiet place to sit and remember."
    hs.apply(plan)
    assert len(plan_for(changed, staff, media, hs.observe(managed_aliases(changed))).changes) == 0


def test_room_version_12_leaves_the_creator_out_of_power_levels(themes, staff, media):
    v12 = [t.model_copy(update={"room_version": "12"}) for t in themes[:1]]
    plan = plan_for(v12, staff, fake_media(v12), Observed())
    creates = [c for c in plan.changes if c.create is not None and c.create.room_version == "12"]
    assert creates
    for change in creates:
        assert change.create is not None
        users = change.create.power_level_content_override["users"]
        assert BOT not in users
        assert all(users[u] == 50 for u in staff.all_ids)
    assert power_levels(bot=BOT, staff_ids=[], room_version="12", events_default=0)["users"] == {}
    assert power_levels(bot=BOT, staff_ids=[], room_version="10", events_default=0)["users"] == {BOT: 100}


def test_rooms_no_theme_names_are_reported_never_deleted(themes, staff, media):
    hs = applied(themes, staff, media)
    observed = hs.observe(managed_aliases(themes))
    gone = TaggedRoom(RoomID("!old:localhost"), RoomAlias("#retired-room:localhost"), "retired", "room")
    plan = plan_for(themes, staff, media, dataclasses.replace(observed, tagged=[*observed.tagged, gone]))
    assert [c.kind for c in plan.changes] == ["orphan"]
    assert plan.actions == []
    assert "#retired-room:localhost" in plan.render()


def test_new_staff_member_is_invited_and_gets_power(themes, staff, media):
    hs = applied(themes, staff, media)
    more = staff.model_copy(
        update={
            "moderators": [*staff.moderators, StaffMember(user_id="@moderator3:localhost", display_name="M3")]
        }
    )
    plan = plan_for(themes, more, media, hs.observe(managed_aliases(themes)))
    kinds = plan.counts()
    assert kinds["invite"] == 1
    rooms = 1 + len(themes) + sum(len(t.rooms) for t in themes)  # the moderators' room, spaces, rooms
    assert kinds["set_state"] == rooms  # one power-levels update per room (not the clinicians' room)
    assert all(c.event_type == "m.room.power_levels" for c in plan.changes if c.kind == "set_state")


def test_missing_media_is_an_error(themes, staff):
    with pytest.raises(PlanError, match="no uploaded scene media"):
        plan_for(themes, staff, {}, Observed())


def test_the_staff_room_follows_the_escalation_setting(themes, staff, media):
    """``escalation.staff_room_alias`` names one room for both provisioning and the escalation desk."""
    plan = build_plan(
        themes, Observed(), bot=BOT, staff=staff, server_name=SERVER, media=media, staff_room="care-team"
    )
    hs = FakeHomeserver()
    hs.apply(plan)
    assert f"#care-team:{SERVER}" in hs.aliases
    assert f"#hearth-staff:{SERVER}" not in hs.aliases
    staff_room = hs.rooms[hs.aliases[f"#care-team:{SERVER}"]]
    assert staff_room[("m.room.join_rules", "")] == {"join_rule": "invite"}


def test_guidelines_are_pinned_formatted_with_the_markdown_as_plain_text(themes):
    content = guidelines_message(themes[0]).content
    assert content["format"] == "org.matrix.custom.html"
    assert content["body"].startswith(themes[0].guidelines.strip())
    # "a crisis line pinned below": the pinned message carries the space's lines from the catalogue.
    assert "pinned below" in themes[0].guidelines
    for line in themes[0].facilitation.crisis_resources:
        assert line.contact in content["body"]
        assert html.escape(line.contact) in content["formatted_body"]
    assert "**" not in content["formatted_body"]
    assert "<p>" in content["formatted_body"] or "<ul>" in content["formatted_body"]
    assert guidelines_html("<script>alert(1)</script> **kind**") == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt; <strong>kind</strong></p>"
    )


def _schedules(themes, text: str):
    """A stand-in schedule per group-session room (the real one is spaces.sessions.schedule)."""
    from spaces.plan import PIN_EVENT, pinned_message
    from spaces.themes import room_alias

    return {
        room_alias(t, r, SERVER): pinned_message(
            f"## Sessions\n\n{text} ({t.slug})", marker=(PIN_EVENT, "schedule"), tag={}
        )
        for t in themes
        for r in t.rooms
        if r.kind == "group-session"
    }


def test_rooms_keep_their_promises_guides_crisis_lines_and_schedules_are_pinned(themes, staff, media):
    """What topics announce is pinned: the guidelines, a resources room's crisis lines, a quiet room's
    breathing or grounding guide and a group-session room's schedule, each under its own marker."""
    from spaces.plan import PIN_EVENT

    hs = FakeHomeserver()
    schedules = _schedules(themes, "Every Wednesday")
    hs.apply(
        build_plan(
            themes, Observed(), bot=BOT, staff=staff, server_name=SERVER, media=media, schedules=schedules
        )
    )
    for theme in themes:
        for room in theme.rooms:
            state = hs.rooms[hs.aliases[f"#{theme.slug}-{room.slug}:{SERVER}"]]
            pinned = state.get(("m.room.pinned_events", ""), {}).get("pinned", [])
            markers = {k[1] for k in state if k[0] == PIN_EVENT}
            if "pinned" in room.topic:
                assert pinned, f"{theme.slug}/{room.slug} says something is pinned"
            if room.kind == "resources":
                assert "crisis-lines" in markers
            if room.kind == "group-session":
                assert "schedule" in markers
                assert (
                    state[("m.room.power_levels", "")]["events_default"] == 50
                )  # read-only between sessions
            if room.guide is not None:
                assert "guide" in markers
            assert len(pinned) == len(markers) + (room.kind == "welcome")
    bodies = [c["body"] for _, c in hs.messages]
    assert any("Crisis lines" in b or "If you need help now" in b for b in bodies)
    assert any("breathing guide" in b.lower() for b in bodies)
    assert any("5-4-3-2-1" in b for b in bodies)
    # Nothing changed: nothing to do.
    again = plan_for(themes, staff, media, hs.observe(managed_aliases(themes)), schedules)
    assert again.actions == [], again.render()


def test_a_changed_schedule_repins_only_the_schedule_and_keeps_the_other_pins(themes, staff, media):
    from spaces.plan import PIN_EVENT

    hs = FakeHomeserver()
    hs.apply(plan_for(themes, staff, media, Observed(), _schedules(themes, "A")))
    changed = _schedules(themes, "B")
    plan = plan_for(themes, staff, media, hs.observe(managed_aliases(themes)), changed)
    assert {(c.kind, c.state_key) for c in plan.actions} == {("pin", "schedule")}
    assert len(plan.actions) == len(changed)
    hs.apply(plan)
    room = hs.rooms[hs.aliases[next(iter(changed))]]
    assert room[(PIN_EVENT, "schedule")]["event_id"] in room[("m.room.pinned_events", "")]["pinned"]


def test_applying_themes_never_opens_or_closes_a_session(themes, staff, media):
    """A group-session room's posting level belongs to its sessions (bridge.sessions): a room open
    for a session stays open when the themes are applied, and a new room starts read-only."""
    hs = applied(themes, staff, media)
    theme = themes[0]
    alias = f"#{theme.slug}-{theme.room_of_kind('group-session').slug}:{SERVER}"
    levels = hs.rooms[hs.aliases[alias]][("m.room.power_levels", "")]
    levels["events_default"] = 0  # a session opened it
    plan = plan_for(themes, staff, media, hs.observe(managed_aliases(themes)))
    assert plan.actions == [], plan.render()
