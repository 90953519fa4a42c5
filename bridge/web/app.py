"""The FastAPI application: health, metrics and the antispam gate (more routes plug in here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError

from bridge.db import unavailable
from bridge.web.openapi_errors import document_shared_refusals
from bridge.web.routes import (
    auth,
    directory,
    escalations,
    gate,
    health,
    join,
    mod_pages,
    moderation_api,
    schemas,
    staff_pages,
)

if TYPE_CHECKING:
    from bridge.service import HearthService

STATIC = Path(__file__).resolve().parent / "static"


def create_app(service: HearthService) -> FastAPI:
    app = FastAPI(
        title="Hearth",
        summary="Peer-support spaces on Matrix: gate endpoints, staff API and dashboard.",
        version="0.1.0",
    )
    app.state.service = service

    @app.middleware("http")
    async def _no_nul(request: Request, call_next: Any) -> Response:
        # PostgreSQL stores no NUL character in text: one in a staff API request ("\u0000" in JSON,
        # %00 in the path or query) would end as a 500 deep in a write. Refused up front instead.
        if request.url.path.startswith("/api/"):
            raw = request.url.path + "?" + request.url.query
            body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
            if "\x00" in raw or "%00" in raw or b"\\u0000" in body:
                return JSONResponse(
                    {"errcode": "M_BAD_JSON", "error": "text may not contain NUL (\\u0000) characters"},
                    status_code=400,
                )
        response: Response = await call_next(request)
        return response

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"errcode": "M_BAD_JSON", "error": "; ".join(problems)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(_request, exc: HTTPException) -> JSONResponse:
        # Matrix-style bodies ({"errcode", "error"}) at the top level, as Synapse's module expects.
        body = (
            exc.detail if isinstance(exc.detail, dict) else {"errcode": "M_UNKNOWN", "error": str(exc.detail)}
        )
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(SQLAlchemyError)
    async def _database_unavailable(_request, exc: SQLAlchemyError) -> JSONResponse:
        # Locked, full or unreachable: say so (never the statement: it may hold members' words).
        reason = unavailable(exc)
        if reason is None:
            raise exc
        return JSONResponse(
            {
                "errcode": "HEARTH_DATABASE_UNAVAILABLE",
                "error": f"Hearth's database can't be used just now: {reason}.",
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    app.include_router(health.router)
    app.include_router(gate.router)
    app.include_router(schemas.router)
    app.include_router(directory.router)
    app.include_router(auth.router)
    app.include_router(escalations.router)
    app.include_router(staff_pages.router)
    app.include_router(moderation_api.router)
    app.include_router(mod_pages.router)
    app.include_router(join.router)
    app.mount("/staff/static", StaticFiles(directory=STATIC), name="staff-static")
    default_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_shared_refusals(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
