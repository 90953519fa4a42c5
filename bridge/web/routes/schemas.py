"""Published JSON Schemas: what Hearth's custom state events contain, for client authors."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from spaces.scene import room_scene_schema

router = APIRouter(prefix="/schemas", tags=["schemas"])


@router.get(
    "/room-scene.json",
    response_class=Response,
    # documented as what it is served as (schemathesis found the document said application/json)
    responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}}}},
)
async def room_scene() -> JSONResponse:
    """JSON Schema (draft 2020-12) of the org.hearth.room.scene state event content."""
    return JSONResponse(
        room_scene_schema(),
        media_type="application/schema+json",
        headers={"Cache-Control": "public, max-age=300"},
    )
