"""Liveness of every part, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.web.deps import service

router = APIRouter()


@router.get("/healthz")
async def healthz(svc=Depends(service)) -> JSONResponse:
    """State of each part (database, homeserver, bot, scheduler): 200 when all are up, 503 naming those down."""
    parts = await svc.health()
    down = sorted(name for name, part in parts.items() if not part["ok"])
    body = {"status": "ok" if not down else "down", "down": down, "parts": parts}
    return JSONResponse(body, status_code=200 if not down else 503)


@router.get("/metrics")
async def metrics(svc=Depends(service)) -> Response:
    """Prometheus metrics: gate calls and verdicts, bot syncs, stage timings."""
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
