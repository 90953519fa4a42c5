"""Fixtures for the spaces domain: shipped themes and staff, fake scene media."""

from __future__ import annotations

import pytest

from config.ids import RoomAlias, UserID
from spaces.plan import MODERATORS_ROOM_LOCALPART, STAFF_ROOM_LOCALPART
from spaces.scene import SceneMedia, required_assets
from spaces.staff import Staff, load_staff
from spaces.themes import Theme, load_themes, room_alias, space_alias

BOT = UserID("@hearth:localhost")
SERVER = "localhost"


@pytest.fixture(scope="session")
def themes() -> list[Theme]:
    return load_themes()


@pytest.fixture(scope="session")
def staff() -> Staff:
    return load_staff()


def fake_media(themes: list[Theme]) -> dict[str, SceneMedia]:
    return {
        key: SceneMedia(f"mxc://{SERVER}/glb-{i}", f"mxc://{SERVER}/png-{i}")
        for i, key in enumerate(required_assets(themes))
    }


@pytest.fixture(scope="session")
def media(themes: list[Theme]) -> dict[str, SceneMedia]:
    return fake_media(themes)


def managed_aliases(themes: list[Theme]) -> list[RoomAlias]:
    out = [
        RoomAlias(f"#{STAFF_ROOM_LOCALPART}:{SERVER}"),
        RoomAlias(f"#{MODERATORS_ROOM_LOCALPART}:{SERVER}"),
    ]
    for theme in themes:
        out.append(space_alias(theme, SERVER))
        out.extend(room_alias(theme, room, SERVER) for room in theme.rooms)
    return out
