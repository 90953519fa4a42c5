"""A corpus of broken theme, policy, rules, staff and crisis-resources files: each is refused with
the file, the key and the reason. Each case edits one line of the shipped file (copied), so the rest
of the file is valid and the refusal is about that edit alone."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from config.resources import ResourceConfigError, load_crisis_resources
from moderation.detectors.rules import RulesDetector
from moderation.errors import ConfigError
from moderation.policy import load_policy
from spaces.staff import StaffError, load_staff
from spaces.themes import ThemeError, load_themes

CONFIG = Path(__file__).resolve().parents[1] / "config"
THEME = "anxiety-panic.toml"


def _themes(folder: Path) -> object:
    return load_themes(folder)


# (kind, file under config/, text to replace, replacement, key named in the refusal, reason words)
CORPUS = [
    ("theme", f"spaces/{THEME}", 'slug = "anxiety-panic"', "slug = 7", "slug", "string"),
    ("theme", f"spaces/{THEME}", 'slug = "anxiety-panic"', 'slug = "Anxiety Panic!"', "slug", ""),
    ("theme", f"spaces/{THEME}", 'room_version = "10"', "room_version = []", "room_version", ""),
    ("theme", f"spaces/{THEME}", 'name = "Anxiety & Panic"', "", "name", "required"),
    ("theme", f"spaces/{THEME}", 'slug = "anxiety-panic"', 'slug = "anxiety-panic"\nslug = "x"', "", "TOML"),
    ("theme", f"spaces/{THEME}", 'room_version = "10"', 'room_version = "10"\nunknown_key = true', "unknown_key", ""),
    (
        "policy",
        "policy.toml",
        'default_profile = "support"',
        'default_profile = "nowhere"',
        "default_profile",
        "",
    ),
    ("policy", "policy.toml", "flood_messages = 8", 'flood_messages = "eight"', "flood_messages", ""),
    ("policy", "policy.toml", "flood_messages = 8", "flood_messages = -3", "flood_messages", ""),
    ("policy", "policy.toml", 'fail_policy = "allow"', 'fail_policy = "maybe"', "fail_policy", ""),
    ("policy", "policy.toml", "[behaviour]", "[behaviour", "", "TOML"),
    ("staff", "staff.toml", 'user_id = "@moderator1:localhost"', 'user_id = "moderator1"', "user_id", ""),
    ("staff", "staff.toml", 'user_id = "@moderator1:localhost"', "user_id = 12", "user_id", ""),
    ("staff", "staff.toml", 'display_name = "Hearth operator"', "display_name = ", "", "TOML"),
    (
        "resources",
        "crisis_resources.toml",
        'url = "https://988lifeline.org"',
        'url = "http://988lifeline.org"',
        "url",
        "https",
    ),
    ("resources", "crisis_resources.toml", 'emergency = "911"', "emergency = 911", "emergency", ""),
    ("resources", "crisis_resources.toml", 'name = "United States"', "", "name", ""),
    (
        "rules",
        "moderation/rules.toml",
        'name = "incitement"',
        'name = "incitement"\naction = "explode"',
        "",
        "",
    ),
    ("rules", "moderation/rules.toml", 'action = "flag"', 'action = "maybe"', "action", ""),
]

ERRORS: dict[str, type[ValueError]] = {
    "theme": ThemeError,
    "policy": ConfigError,
    "staff": StaffError,
    "resources": ResourceConfigError,
    "rules": ConfigError,
}
LOADERS: dict[str, Callable[[Path], object]] = {
    "theme": lambda path: _themes(path.parent),
    "policy": load_policy,
    "staff": load_staff,
    "resources": load_crisis_resources,
    "rules": RulesDetector.from_file,
}


def _broken_copy(tmp_path: Path, relative: str, old: str, new: str) -> Path:
    source = CONFIG / relative
    if relative.startswith("spaces/"):
        folder = tmp_path / "spaces"
        shutil.copytree(CONFIG / "spaces", folder)
        target = folder / source.name
    else:
        target = tmp_path / source.name
    text = source.read_text()
    assert old in text, f"{relative} no longer holds {old!r}: update the corpus"
    target.write_text(text.replace(old, new, 1))
    return target


@pytest.mark.parametrize(("kind", "relative", "old", "new", "key", "reason"), CORPUS)
def test_a_broken_file_is_refused_naming_file_key_and_reason(tmp_path, kind, relative, old, new, key, reason):
    path = _broken_copy(tmp_path, relative, old, new)
    with pytest.raises(ERRORS[kind]) as refused:
        LOADERS[kind](path)
    message = str(refused.value)
    assert str(path) in message, message
    assert key in message, message
    assert reason.lower() in message.lower(), message
    assert len(message) > len(str(path)) + len(key) + 10, message  # a reason, not just a location


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_the_shipped_files_load(kind):
    shipped = {
        "theme": CONFIG / "spaces" / THEME,
        "policy": CONFIG / "policy.toml",
        "staff": CONFIG / "staff.toml",
        "resources": CONFIG / "crisis_resources.toml",
        "rules": CONFIG / "moderation" / "rules.toml",
    }
    assert LOADERS[kind](shipped[kind])
