"""The executor's lanes: per-theme groups of a plan that may run side by side, each in plan order."""

from __future__ import annotations

from typing import Any, cast

from bridge.clock import SystemClock
from bridge.provisioning import Provisioner, managed_aliases
from spaces.plan import build_plan, refs_in
from spaces.staff import load_staff
from spaces.themes import load_themes
from tests.spaces.conftest import BOT, SERVER, fake_media
from tests.spaces.fake_homeserver import FakeHomeserver


def _provisioner(themes: list[Any]) -> Provisioner:
    # lanes() needs neither the gateway nor the database.
    return Provisioner(
        cast(Any, None), cast(Any, None), SystemClock(), themes=themes, staff=load_staff(), server_name=SERVER
    )


def test_lanes_split_a_plan_from_empty_by_theme_and_keep_its_order() -> None:
    themes = load_themes()
    staff = load_staff()
    observed = FakeHomeserver().observe(managed_aliases(themes, SERVER))
    plan = build_plan(themes, observed, bot=BOT, staff=staff, server_name=SERVER, media=fake_media(themes))
    lanes = _provisioner(themes).lanes(plan.actions)
    assert len(lanes) == 2 + len(themes)  # the two staff rooms, then one lane per theme
    assert sorted(c for lane in lanes for c in map(plan.actions.index, lane)) == list(
        range(len(plan.actions))
    )
    for lane in lanes:
        positions = [plan.actions.index(c) for c in lane]
        assert positions == sorted(positions)
        aliases = {c.alias for c in lane}
        for change in lane:
            assert refs_in([change.state_key, change.content]) <= aliases


def test_applying_lane_by_lane_reaches_the_desired_state() -> None:
    themes = load_themes()
    staff = load_staff()
    media = fake_media(themes)
    hs = FakeHomeserver()
    aliases = managed_aliases(themes, SERVER)
    plan = build_plan(themes, hs.observe(aliases), bot=BOT, staff=staff, server_name=SERVER, media=media)
    for lane in reversed(_provisioner(themes).lanes(plan.actions)):  # any lane order will do
        hs.apply(type(plan)(changes=lane))
    again = build_plan(themes, hs.observe(aliases), bot=BOT, staff=staff, server_name=SERVER, media=media)
    assert again.actions == []
