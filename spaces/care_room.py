"""The care room: the private room a person in crisis shares with the bot, and with the clinician
who takes their case. It carries a consultation-office scene (``org.hearth.room.scene``): small,
private and calm, two armchairs at a low table, a safe place to step out to, seated and still.
"""

from __future__ import annotations

from typing import Any

from spaces.scene import AssetSpec, asset_key, room_scene_content
from spaces.themes import Comfort, Layout, Room, RoomFacilitation, Scene

CARE_NOTICE = (
    "This is your private room with Hearth's care team. Hearth is peer support, not a crisis service: "
    "if you are in danger now, contact your local emergency number or one of the lines listed here."
)

CARE_ROOM = Room(
    slug="care",
    kind="care",
    name="Private check-in",
    topic="Your private room with Hearth's care team. Nobody else can read it.",
    join_rule="knock",  # invite-only in practice: the bot invites; the scene only describes it
    history_visibility="shared",
    members_may_post=True,
    moderation_profile="quiet",
    scene=Scene(
        preset="consultation-office",
        purpose="consultation",
        description=(
            "A small, quiet office with soft window light: two armchairs turned towards each other "
            "across a low table, a plant and a lamp, and a door you can step out of at any time."
        ),
        capacity=4,
        layout=Layout(kind="pairs", seats=2),
        comfort=Comfort(locomotion_allowed=[], session_length_minutes=60, break_reminder_minutes=20),
        facilitation=RoomFacilitation(mode="clinician-facilitated"),
    ),
)


def care_scene_content(crisis_resources: list[dict[str, Any]], safe_place_room: str | None) -> dict[str, Any]:
    """``org.hearth.room.scene`` of a care room, with the person's crisis lines and, when known, the
    quiet room of their space as the safe place to step out to."""
    return room_scene_content(
        CARE_ROOM,
        not_therapy_notice=CARE_NOTICE,
        crisis_resources=crisis_resources,
        safe_place_room=safe_place_room,
    )


def care_asset() -> tuple[str, AssetSpec]:
    """The GLB/PNG the care room's world event points at (key and what to generate)."""
    scene = CARE_ROOM.scene
    return asset_key(scene), AssetSpec(scene.preset, scene.layout, scene.exposure)
