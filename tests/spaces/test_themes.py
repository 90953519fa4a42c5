import tomllib
from pathlib import Path

import pytest

from spaces.themes import (
    DEFAULT_THEMES_DIR,
    MODERATION_PROFILES,
    REQUIRED_ROOM_KINDS,
    ThemeError,
    load_themes,
)

SHIPPED = {
    "anxiety-panic",
    "depression-low-mood",
    "grief-loss",
    "addiction-recovery",
    "trauma-ptsd",
    "chronic-pain-rehab",
    "new-parents",
    "carers",
}


def test_every_shipped_theme_loads(themes):
    assert SHIPPED <= {t.slug for t in themes}
    for theme in themes:
        kinds = {r.kind for r in theme.rooms}
        assert set(REQUIRED_ROOM_KINDS) <= kinds, theme.slug
        welcome = theme.room_of_kind("welcome")
        assert welcome.members_may_post is False
        assert "peer support, not" in theme.facilitation.not_therapy_notice
        assert theme.guidelines.strip().startswith("#")
        assert theme.room_version == "10"
        for room in theme.rooms:
            assert room.moderation_profile in MODERATION_PROFILES
            assert room.scene.comfort.flashing == "none"


def test_trauma_group_session_is_knock_and_exposure_only_where_meant(themes):
    trauma = next(t for t in themes if t.slug == "trauma-ptsd")
    group = trauma.room_of_kind("group-session")
    assert group.join_rule == "knock"
    assert group.history_visibility == "joined"
    assert all(r.scene.exposure is None for r in trauma.rooms)
    anxiety = next(t for t in themes if t.slug == "anxiety-panic")
    assert anxiety.room_of_kind("practice").scene.exposure is not None


def _write_good(directory: Path, slug: str = "anxiety-panic") -> Path:
    text = (DEFAULT_THEMES_DIR / f"{slug}.toml").read_text(encoding="utf-8")
    path = directory / f"{slug}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _rewrite(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def test_broken_file_names_file_key_and_reason_and_loads_nothing(tmp_path):
    _write_good(tmp_path, "carers")
    bad = _write_good(tmp_path, "anxiety-panic")
    # rooms[2] is the discussion room; make its capacity nonsense.
    _rewrite(bad, "capacity = 25", 'capacity = "lots"')
    with pytest.raises(ThemeError) as info:
        load_themes(tmp_path)
    err = info.value
    assert err.file == str(bad)
    assert err.key == "rooms[2].scene.capacity"
    assert "integer" in err.reason
    assert str(bad) in str(err)
    assert "rooms[2].scene.capacity" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ('join_rule = "knock"', 'join_rule = "public"', "rooms[3].join_rule", "restricted"),
        ("capacity = 10\n", "capacity = 1\n", "rooms[3].scene.capacity", "greater than or equal to 2"),
        (
            'default_level = "empty-beach"',
            'default_level = "nearby-group"',
            "rooms[4].scene.exposure",
            "gentlest",
        ),
        ("members_may_post = false\n", "members_may_post = true\n", "rooms[0].members_may_post", "read-only"),
        ('kind = "quiet"\n', 'kind = "discussion"\n', "rooms", "'quiet'"),
        ('slug = "welcome"', 'slug = "check-in"', "rooms[1].slug", "duplicate"),
        (
            "break_reminder_minutes = 25",
            "break_reminder_minutes = 90",
            "rooms[3].scene.comfort",
            "must not exceed",
        ),
        ('preset = "garden"', 'preset = "nightclub"', "rooms[2].scene.preset", "calm-beach"),
        (
            '[rooms.scene.layout]\nkind = "circle"\nseats = 12',
            '[rooms.scene.layout]\nkind = "circle"\nseats = 12\nsparkles = true',
            "rooms[1].scene.layout.sparkles",
            "Extra inputs",
        ),
    ],
)
def test_invalid_values_are_refused_with_key_path(tmp_path, old, new, key, reason):
    slug = "trauma-ptsd" if "knock" in old else "anxiety-panic"
    path = _write_good(tmp_path, slug)
    _rewrite(path, old, new)
    with pytest.raises(ThemeError) as info:
        load_themes(tmp_path)
    assert info.value.key == key, str(info.value)
    assert reason in info.value.reason


def test_safe_place_must_name_a_room(tmp_path):
    path = _write_good(tmp_path)
    _rewrite(
        path,
        "session_length_minutes = 20\nbreak_reminder_minutes = 10\n[rooms.scene.exposure]",
        'session_length_minutes = 20\nbreak_reminder_minutes = 10\nsafe_place_room = "nowhere"\n[rooms.scene.exposure]',
    )
    with pytest.raises(ThemeError) as info:
        load_themes(tmp_path)
    assert info.value.key == "rooms[4].scene.comfort.safe_place_room"


def test_toml_syntax_error_and_slug_mismatch(tmp_path):
    path = tmp_path / "anxiety-panic.toml"
    path.write_text("slug = \n", encoding="utf-8")
    with pytest.raises(ThemeError, match="not valid TOML"):
        load_themes(tmp_path)
    good = _write_good(tmp_path, "carers")
    path.unlink()
    good.rename(tmp_path / "careers.toml")
    with pytest.raises(ThemeError) as info:
        load_themes(tmp_path)
    assert info.value.key == "slug"


def test_empty_directory_is_refused(tmp_path):
    with pytest.raises(ThemeError, match="no theme files"):
        load_themes(tmp_path)


def test_shipped_files_are_plain_toml():
    for path in DEFAULT_THEMES_DIR.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert data["slug"] == path.stem


def test_crisis_lines_come_from_the_one_catalogue(tmp_path):
    """Theme files list no crisis lines: they are filled in from config/crisis_resources.toml, for the
    theme's region, so a line changed there changes in every space."""
    for slug in SHIPPED:
        _write_good(tmp_path, slug)
    grief = tmp_path / "grief-loss.toml"
    _rewrite(grief, "version = ", 'region = "GB"\nversion = ')
    themes = {t.slug: t for t in load_themes(tmp_path)}
    lines = [r.label for r in themes["grief-loss"].facilitation.crisis_resources]
    assert lines[:3] == ["Emergency services", "Cruse Bereavement Support", "Samaritans"]
    assert "988 Suicide & Crisis Lifeline" not in lines
    anxiety = [r.label for r in themes["anxiety-panic"].facilitation.crisis_resources]
    assert {"988 Suicide & Crisis Lifeline", "Samaritans", "Find A Helpline"} <= set(anxiety)
    us = {t.slug: t for t in load_themes(tmp_path, default_region="US")}
    assert [r.label for r in us["anxiety-panic"].facilitation.crisis_resources][:2] == [
        "Emergency services",
        "988 Suicide & Crisis Lifeline",
    ]
    assert "Cruse Bereavement Support" in [r.label for r in us["grief-loss"].facilitation.crisis_resources]


def test_a_theme_listing_its_own_lines_or_an_unknown_region_is_refused(tmp_path):
    for slug in SHIPPED:
        _write_good(tmp_path, slug)
    carers = tmp_path / "carers.toml"
    _rewrite(
        carers, "[facilitation]\n", '[facilitation]\ncrisis_resources = [{ label = "X", contact = "1" }]\n'
    )
    with pytest.raises(ThemeError) as info:
        load_themes(tmp_path)
    assert info.value.key == "facilitation.crisis_resources"
    assert "config/crisis_resources.toml" in info.value.reason
    _write_good(tmp_path, "carers")
    _rewrite(carers, "version = ", 'region = "FR"\nversion = ')
    with pytest.raises(ThemeError) as info:
        load_themes(tmp_path)
    assert info.value.key == "region"
    assert "'FR' has no lines" in info.value.reason
    with pytest.raises(ThemeError, match="default region 'ZZ'"):
        load_themes(DEFAULT_THEMES_DIR, default_region="ZZ")


def test_a_catalogue_line_for_a_theme_that_does_not_exist_is_refused(tmp_path):
    _write_good(tmp_path, "carers")  # the catalogue's bereavement line names grief-loss, not here
    with pytest.raises(ThemeError, match="no theme is called 'grief-loss'"):
        load_themes(tmp_path)
