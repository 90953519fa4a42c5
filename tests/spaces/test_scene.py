import jsonschema
import pytest

from spaces.scene import (
    HINT_KEY,
    SceneMedia,
    room_scene_schema,
    scene_content,
    seat_placements,
    space_child_hint,
    world_content,
)
from spaces.themes import Layout

MEDIA = SceneMedia("mxc://localhost/glb", "mxc://localhost/png")


def test_schema_is_valid_draft_2020_12():
    schema = room_scene_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_scene_validates_against_the_published_schema(themes):
    validator = jsonschema.Draft202012Validator(room_scene_schema())
    count = 0
    for theme in themes:
        for room in theme.rooms:
            content = scene_content(theme, room, "localhost")
            errors = sorted(validator.iter_errors(content), key=lambda e: list(e.path))
            assert not errors, f"{theme.slug}/{room.slug}: {errors[0].message} at {list(errors[0].path)}"
            assert ("exposure" in content) == (room.scene.exposure is not None)
            assert content["comfort"]["flashing"] == "none"
            assert content["comfort"]["safe_place_room"].startswith(f"#{theme.slug}-")
            assert len(content["layout"]["seats"]) == room.scene.layout.seats
            count += 1
    assert count >= 40


def test_schema_rejects_flashing_and_missing_exit(themes):
    validator = jsonschema.Draft202012Validator(room_scene_schema())
    theme = next(t for t in themes if t.slug == "anxiety-panic")
    content = scene_content(theme, theme.room("practice"), "localhost")
    content["comfort"]["flashing"] = "strobe"
    content["exposure"]["exit_always_available"] = False
    assert len(list(validator.iter_errors(content))) == 2


def test_world_content_never_has_script_url(themes):
    for theme in themes:
        for room in theme.rooms:
            world = world_content(room, MEDIA)
            assert "script_url" not in world
            assert world["scene_url"].startswith("mxc://")
            assert world["scene_preview_url"].startswith("mxc://")
            assert world["scene_name"]
            assert world["scene_description"]
            assert world["attribution"]


def test_space_child_hint(themes):
    room = themes[0].rooms[0]
    assert space_child_hint(room) == {"preset": room.scene.preset, "capacity": room.scene.capacity}
    assert HINT_KEY == "org.hearth.hint"


@pytest.mark.parametrize("kind", ["circle", "semicircle", "rows", "scattered", "pairs", "stations"])
def test_seats_do_not_overlap(kind):
    seats = seat_placements(Layout(kind=kind, seats=12))
    assert len({s.id for s in seats}) == 12
    for i, a in enumerate(seats):
        for b in seats[i + 1 :]:
            assert (a.x - b.x) ** 2 + (a.z - b.z) ** 2 > 0.5**2, (kind, a, b)


def test_the_care_room_is_a_calm_private_consultation_office():
    from config.resources import load_crisis_resources
    from spaces.care_room import CARE_ROOM, care_scene_content

    lines = load_crisis_resources().pinned_lines("GB", None)
    validator = jsonschema.Draft202012Validator(room_scene_schema())
    for safe_place in ("#grief-loss-quiet:localhost", None):
        content = care_scene_content(lines, safe_place)
        errors = list(validator.iter_errors(content))
        assert not errors, errors[0].message
        assert content["preset"] == "consultation-office"
        assert content["purpose"] == "consultation"
        assert content["facilitation"]["mode"] == "clinician-facilitated"
        assert content["facilitation"]["crisis_resources"][1]["label"] == "Samaritans"
        assert content["comfort"]["locomotion_allowed"] == []  # seated and still
        assert len(content["layout"]["seats"]) == 2
        assert content["comfort"].get("safe_place_room") == safe_place
    assert world_content(CARE_ROOM, MEDIA)["scene_name"] == "Private check-in · Consultation office"
