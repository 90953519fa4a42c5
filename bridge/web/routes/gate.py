"""The gate: endpoints Synapse's ``synapse-http-antispam`` module calls before delivering an event.

A 2xx answer allows; a 4xx with ``errcode`` rejects. Callers without the shared secret get 401.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from bridge.web.deps import require_bearer, service

router = APIRouter(prefix="/_hearth/antispam", tags=["gate"])

CALLBACKS = ("check_event_for_spam", "user_may_join_room", "user_may_invite")


@router.post("/ping")
async def ping(request: Request, svc=Depends(service)) -> dict[str, Any]:
    """Liveness probe the antispam module may send at start-up."""
    require_bearer(request, svc.settings.gate.secret.get_secret_value(), "gate secret")
    body = await request.json()
    return {"id": body.get("id"), "status": "ok"}


@router.post("/{callback}")
async def gate(callback: str, request: Request, svc=Depends(service)) -> JSONResponse:
    """Answer one spam-checker callback: 200 allows, 403 M_FORBIDDEN refuses with a reason."""
    started = time.perf_counter()
    try:
        require_bearer(request, svc.settings.gate.secret.get_secret_value(), "gate secret")
    except HTTPException:
        svc.metrics.gate_calls.labels(callback=callback, outcome="unauthorized").inc()
        raise
    if callback not in CALLBACKS:
        raise HTTPException(404, {"errcode": "M_UNRECOGNIZED", "error": f"unknown callback {callback!r}"})
    try:
        payload = await request.json()
    except ValueError:
        raise HTTPException(400, {"errcode": "M_NOT_JSON", "error": "body is not JSON"}) from None
    if not isinstance(payload, dict):
        raise HTTPException(400, {"errcode": "M_BAD_JSON", "error": "body must be a JSON object"})
    status, body = await svc.gate.decide(callback, payload)
    outcome = "allow" if status < 300 else "reject"
    svc.metrics.gate_calls.labels(callback=callback, outcome=outcome).inc()
    svc.metrics.gate_seconds.labels(callback=callback).observe(time.perf_counter() - started)
    return JSONResponse(body, status_code=status)
