"""Published JSON Schemas: what Hearth's custom state events contain, for client authors."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from spaces.scene import room_scene_schema

router = APIRouter(prefix="/schemas", tags=["schemas"])


@router.get("/room-scene.json")
async def room_scene() -> JSONResponse:
    """JSON Schema (draft 2020-12) of the org.hearth.room.scene state event content."""
    return JSONResponse(
        room_scene_schema(),
        media_type="application/schema+json",
        headers={"Cache-Control": "public, max-age=300"},
    )
