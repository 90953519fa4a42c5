"""The public directory of support spaces: what a newcomer can browse before joining anything."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlmodel import Session, select

from bridge import db
from bridge.web.deps import service
from spaces.models import ProvisionedRoom, ProvisionedSpace
from spaces.themes import Theme, ThemeError, load_themes

router = APIRouter(prefix="/api", tags=["directory"])


@cache
def _themes() -> dict[str, Theme]:
    try:
        return {t.slug: t for t in load_themes()}
    except ThemeError:
        return {}


class DirectoryRoom(BaseModel):
    slug: str
    alias: str
    room_id: str
    name: str | None
    topic: str | None
    preset: str | None
    purpose: str | None
    capacity: int
    moderation_profile: str
    members_may_post: bool


class DirectorySpace(BaseModel):
    slug: str
    alias: str
    room_id: str
    name: str | None
    description: str | None
    theme_version: int
    rooms: list[DirectoryRoom]


class Directory(BaseModel):
    spaces: list[DirectorySpace]


@router.get("/spaces", response_model=Directory)
async def spaces(svc=Depends(service)) -> dict[str, Any]:
    """Provisioned support spaces and their rooms: aliases, 3D preset, capacity, moderation profile."""

    def read(session: Session) -> tuple[list[ProvisionedSpace], list[ProvisionedRoom]]:
        return (
            list(session.exec(select(ProvisionedSpace).order_by(ProvisionedSpace.theme_slug))),
            list(session.exec(select(ProvisionedRoom))),
        )

    space_rows, room_rows = await db.run_db(svc.engine, read)
    themes = _themes()
    out: list[dict[str, Any]] = []
    for sp in space_rows:
        theme = themes.get(sp.theme_slug)
        order = {r.slug: i for i, r in enumerate(theme.rooms)} if theme else {}
        rooms = []
        for row in sorted(
            (r for r in room_rows if r.space_slug == sp.theme_slug),
            key=lambda r: (order.get(r.room_slug, 99), r.room_slug),
        ):
            room = next((r for r in theme.rooms if r.slug == row.room_slug), None) if theme else None
            rooms.append(
                {
                    "slug": row.room_slug,
                    "alias": row.alias,
                    "room_id": row.room_id,
                    "name": room.name if room else None,
                    "topic": " ".join(room.topic.split()) if room else None,
                    "preset": room.scene.preset if room else None,
                    "purpose": room.scene.purpose if room else None,
                    "capacity": row.capacity,
                    "moderation_profile": row.profile,
                    "members_may_post": row.members_may_post,
                }
            )
        out.append(
            {
                "slug": sp.theme_slug,
                "alias": sp.alias,
                "room_id": sp.room_id,
                "name": theme.name if theme else None,
                "description": " ".join(theme.description.split()) if theme else None,
                "theme_version": sp.theme_version,
                "rooms": rooms,
            }
        )
    return {"spaces": out}
