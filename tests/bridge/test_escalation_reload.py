"""Reloading the staff file and the crisis resources (SIGHUP), without a homeserver: a good file takes
effect for every reader at once, a broken one changes nothing and names file, key and reason. On a
running Hearth: tests/e2e/test_hostile_reload.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.clock import SystemClock
from bridge.escalation.config import StaffIds, reread
from bridge.escalation.desk import EscalationDesk
from bridge.gateway import NioGateway
from bridge.scheduler import Scheduler
from bridge.tasks import TaskGroup
from config.settings import load_settings
from moderation.escalation import NotStaff

CONFIG = Path(__file__).resolve().parents[2] / "config"
NEW_MODERATOR = "@moderator9:localhost"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    staff = tmp_path / "staff.toml"
    resources = tmp_path / "crisis_resources.toml"
    shutil.copy(CONFIG / "staff.toml", staff)
    shutil.copy(CONFIG / "crisis_resources.toml", resources)
    return staff, resources


def _settings(staff: Path, resources: Path, **escalation: object):
    return load_settings(
        None,
        environment="development",
        escalation={"staff_file": str(staff), "resources_file": str(resources), **escalation},
    )


def _add_moderator(staff: Path, user: str = NEW_MODERATOR) -> None:
    staff.write_text(
        staff.read_text() + f'\n[[moderators]]\nuser_id = "{user}"\ndisplay_name = "New moderator"\n'
    )


@pytest.fixture
def desk(files, engine):
    clock = SystemClock()
    gateway = NioGateway("http://127.0.0.1:9", "@hearth:localhost")  # never contacted: not logged in
    return EscalationDesk(_settings(*files), engine, gateway, Scheduler(clock), clock, TaskGroup())


def test_reread_reads_good_files(files):
    got = reread(_settings(*files))
    assert got.errors == ()
    assert got.staff is not None
    assert "@clinician1:localhost" in got.staff.clinician_ids
    assert got.resources is not None
    assert "US" in got.resources.codes


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (('user_id = "@moderator1:localhost"', "user_id = 12"), ["moderators[0].user_id", "string"]),
        (("\n[rota]\n", "\n[rota\n"), ["not valid TOML"]),
        (
            ('fallback = ["@clinician1:localhost"]', 'fallback = ["@moderator1:localhost"]'),
            ["rota", "not clinicians"],
        ),
        (
            ('timezone = "Europe/London"', 'timezone = "Mars/Olympus"'),
            ["rota.timezone", "unknown IANA time zone"],
        ),
        (("[acknowledge]\n", "[acknowledge]\nsmile = 1\n"), ["acknowledge.smile", "Extra inputs"]),
    ],
)
def test_a_broken_staff_file_is_refused_naming_file_key_and_reason(files, edit, words):
    staff, resources = files
    text = staff.read_text()
    assert edit[0] in text
    staff.write_text(text.replace(edit[0], edit[1], 1))
    got = reread(_settings(staff, resources))
    assert got.staff is None
    assert got.resources is not None  # the other file is read on its own
    (error,) = got.errors
    assert "`escalation.staff_file`" in error
    assert str(staff) in error
    for word in words:
        assert word in error


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (('emergency = "911"', "emergency = 911"), ["regions.US.emergency", "string"]),
        (
            ('[regions.default]\nname = "International"', '[regions.fallback]\nname = "International"'),
            ["default"],
        ),
        (('url = "https://988lifeline.org"', 'url = "http://988lifeline.org"'), ["url", "https"]),
        (("[regions.US]", "[regions.US"), ["invalid TOML"]),
    ],
)
def test_a_broken_catalogue_is_refused_naming_file_key_and_reason(files, edit, words):
    staff, resources = files
    text = resources.read_text()
    assert edit[0] in text
    resources.write_text(text.replace(edit[0], edit[1], 1))
    got = reread(_settings(staff, resources))
    assert got.resources is None
    assert got.staff is not None
    (error,) = got.errors
    assert "`escalation.resources_file`" in error
    assert str(resources) in error
    for word in words:
        assert word in error


def test_files_that_are_not_text_are_refused_too(files):
    staff, resources = files
    staff.write_bytes(b"\xff\xfe[[moderators]]\n")
    resources.write_bytes(b"\xff\xfe[regions.US]\n")
    got = reread(_settings(staff, resources))
    assert (got.staff, got.resources) == (None, None)
    assert len(got.errors) == 2
    assert str(staff) in got.errors[0]
    assert str(resources) in got.errors[1]


def test_a_catalogue_without_the_operators_default_region_is_refused(files):
    staff, resources = files
    s = _settings(staff, resources, default_region="GB")
    assert reread(s).errors == ()
    text = resources.read_text()
    start = text.index("\n[regions.GB]\n")
    end = text.index("\n[regions.", start + 1)  # the next region's table
    resources.write_text(text[:start] + text[end:])
    (error,) = reread(s).errors
    assert "`escalation.default_region`: 'GB' has no lines in" in error
    assert str(resources) in error


async def test_a_good_staff_file_applies_to_every_reader_and_a_broken_one_changes_nothing(files, desk):
    staff, resources = files
    s = _settings(staff, resources)
    everyone = StaffIds(lambda: desk.everyone)  # what the gate's checks and screening hold
    protected = StaffIds(lambda: desk.cfg.protected)  # what the welcome holds
    current = desk.current_staff  # what sign-in, the moderators' and sessions' desks hold
    assert NEW_MODERATOR not in everyone

    good = staff.read_text()
    staff.write_text(good.replace("\n[rota]\n", "\n[rota\n", 1))
    error = await desk.reload(s)
    assert error is not None
    assert str(staff) in error
    assert "not valid TOML" in error
    assert desk.reload_error == error
    assert (await desk.health())["reload_error"] == error
    assert "@moderator1:localhost" in everyone  # the running staff stay
    assert current().role_of("@clinician1:localhost") == "clinician"

    staff.write_text(good)
    _add_moderator(staff)
    assert await desk.reload(s) is None
    assert desk.reload_error is None
    assert NEW_MODERATOR in everyone
    assert NEW_MODERATOR in protected
    assert current().role_of(NEW_MODERATOR) == "moderator"
    assert NEW_MODERATOR in current().moderation_ids
    assert NEW_MODERATOR not in desk.clinicians

    # a clinician removed: no longer allowed to acknowledge, no longer paged, no longer protected
    removed = "@clinician3:localhost"
    text = staff.read_text()
    text = text.replace(
        '[[clinicians]]\nuser_id = "@clinician3:localhost"\ndisplay_name = "Lea Novak (counselling psychologist)"\n',
        "",
    )
    text = text.replace(
        'clinicians = ["@clinician2:localhost", "@clinician3:localhost"]',
        'clinicians = ["@clinician2:localhost"]',
    )
    text = text.replace('clinicians = ["@clinician3:localhost"]', 'clinicians = ["@clinician2:localhost"]')
    staff.write_text(text)
    assert await desk.reload(s) is None
    assert removed not in desk.clinicians
    assert removed not in everyone
    assert removed not in protected
    assert removed not in desk.staff_room.members
    with pytest.raises(NotStaff):
        desk.require_staff(removed)


async def test_a_good_catalogue_applies_to_the_next_resources_message(files, desk):
    staff, resources = files
    s = _settings(staff, resources)
    before = await desk.resources_for("@river:localhost", None)
    assert "Find A Helpline" in before["body"]
    resources.write_text(
        resources.read_text().replace('name = "Find A Helpline"', 'name = "Helpline Finder 2"', 1)
    )
    assert await desk.reload(s) is None
    after = await desk.resources_for("@river:localhost", None)
    assert "Helpline Finder 2" in after["body"]
    assert "Find A Helpline" not in after["body"]

    resources.write_text("regions = 3\n")
    error = await desk.reload(s)
    assert error is not None
    assert str(resources) in error
    assert "regions" in error
    assert "Helpline Finder 2" in (await desk.resources_for("@river:localhost", None))["body"]
