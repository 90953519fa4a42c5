"""The gate: endpoints Synapse's ``synapse-http-antispam`` module calls before delivering an event.

A 2xx answer allows; a 4xx with ``errcode`` rejects. Callers without the shared secret get 401; a
body that is too large (413), not JSON (400) or not the shape the module sends (400, the field named)
is refused before any check reads it. A check that fails inside Hearth never becomes a 500 (which the
module would turn into an allow, and log with the whole event): joins and invites are refused for now
(they fail closed), an event is let through and screened again by the bot after delivery, as when the
gate passes its budget.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from bridge.gate import ALLOW, PAYLOADS, problem, reject
from bridge.web.deps import require_bearer, service

log = logging.getLogger(__name__)

router = APIRouter(prefix="/_hearth/antispam", tags=["gate"])

CALLBACKS = tuple(PAYLOADS)
# Synapse refuses events over 64 KiB; their client form with the module's wrapping stays well inside this.
MAX_BODY_BYTES = 256 * 1024


def _bad(status: int, errcode: str, error: str) -> HTTPException:
    return HTTPException(status, {"errcode": errcode, "error": error})


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, read no further than ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _bad(413, "M_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _bad(413, "M_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise _bad(400, "M_NOT_JSON", "body is not JSON") from None
    if not isinstance(payload, dict):
        raise _bad(400, "M_BAD_JSON", "body must be a JSON object")
    return payload


@router.post("/ping")
async def ping(request: Request, svc=Depends(service)) -> dict[str, Any]:
    """Liveness probe the antispam module may send at start-up."""
    require_bearer(request, svc.settings.gate.secret.get_secret_value(), "gate secret")
    body = await _json_object(request)
    return {"id": body.get("id"), "status": "ok"}


@router.post("/{callback}")
async def gate(callback: str, request: Request, svc=Depends(service)) -> JSONResponse:
    """Answer one spam-checker callback: 200 allows, 403 M_FORBIDDEN refuses with a reason."""
    started = time.perf_counter()
    # Metrics are labelled with known callbacks only: a caller must not grow the label set at will.
    label = callback if callback in CALLBACKS else "unknown"
    try:
        require_bearer(request, svc.settings.gate.secret.get_secret_value(), "gate secret")
    except HTTPException:
        svc.metrics.gate_calls.labels(callback=label, outcome="unauthorized").inc()
        raise
    if callback not in CALLBACKS:
        raise _bad(404, "M_UNRECOGNIZED", f"unknown callback {callback[:64]!r}")
    try:
        payload = await _json_object(request)
        wrong = problem(callback, payload)
        if wrong is not None:
            raise _bad(400, "M_BAD_JSON", wrong)
    except HTTPException:
        svc.metrics.gate_calls.labels(callback=label, outcome="malformed").inc()
        raise
    try:
        status, body = await svc.gate.decide(callback, payload)
    except Exception as e:  # the type only: an exception's text may quote the message
        log.error("gate check %s failed: %s", callback, type(e).__name__)
        svc.metrics.gate_calls.labels(callback=label, outcome="error").inc()
        if callback == "check_event_for_spam":
            status, body = ALLOW  # delivered; the bot screens it again or carries out what was decided
        else:
            status, body = reject(
                "Hearth couldn't check this just now. Please try again in a moment.", "gate_error"
            )
        return JSONResponse(body, status_code=status)
    outcome = "allow" if status < 300 else "reject"
    svc.metrics.gate_calls.labels(callback=label, outcome=outcome).inc()
    svc.metrics.gate_seconds.labels(callback=label).observe(time.perf_counter() - started)
    return JSONResponse(body, status_code=status)
