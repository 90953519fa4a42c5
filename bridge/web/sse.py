"""Server-sent events for the staff pages' live lists: a snapshot is sent whenever it changes, and a
comment every 15 s keeps proxies from closing a quiet stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0


def live(request: Request, read: Callable[[], Awaitable[Any]], event: str = "queue") -> StreamingResponse:
    """``event: <event>`` with ``read()`` as JSON, again each time it changes, until the client leaves."""

    async def stream() -> AsyncIterator[str]:
        last = None
        quiet = 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            snapshot = json.dumps(await read(), sort_keys=True)
            if snapshot != last:
                last, quiet = snapshot, 0.0
                yield f"event: {event}\ndata: {snapshot}\n\n"
            elif quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": still here\n\n"
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
