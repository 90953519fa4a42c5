"""The bot's sync loop: paced, so that a busy room does not cost Synapse one /sync per event."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from bridge.gateway import SyncBatch, TimelineEvent
from bridge.listener import Bot, load_token
from config.ids import RoomID


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class BusyServer:
    """A homeserver with a new event for every sync: /sync always answers at once."""

    user_id = "@hearth:localhost"

    def __init__(self) -> None:
        self.syncs: list[float] = []

    async def restore_or_login(self, password: str, session_file: Any, device_name: str) -> None:
        return None

    async def sync(self, since: str | None, timeout_ms: int, first: bool = False) -> SyncBatch:
        self.syncs.append(time.monotonic())
        n = len(self.syncs)
        event = {"event_id": f"$e{n}", "type": "m.room.message", "sender": "@a:localhost", "content": {}}
        return SyncBatch(next_batch=f"s{n}", timeline=[TimelineEvent(RoomID("!r:localhost"), event)])


async def _run_for(bot: Bot, seconds: float) -> None:
    task = asyncio.create_task(bot.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_syncs_are_paced_and_every_event_still_handled(engine: Engine) -> None:
    server = BusyServer()
    seen: list[str] = []

    async def handler(ev: TimelineEvent) -> None:
        seen.append(ev.event_id)

    gateway: Any = server  # the subset of NioGateway the loop uses
    bot = Bot(gateway, engine, Clock(), "pw", handlers=[handler], sync_min_interval_ms=100)
    await _run_for(bot, 0.75)
    gaps = [b - a for a, b in zip(server.syncs, server.syncs[1:], strict=False)]
    assert 3 <= len(server.syncs) <= 9  # 0.75 s at one sync per 100 ms at most
    assert min(gaps) >= 0.095
    # Nothing skipped: every event the server gave was handled, and the token saved.
    assert seen[0] == "$e2"  # the first sync of a fresh bot starts from now
    assert seen == [f"$e{n}" for n in range(2, len(server.syncs) + 1)]
    assert load_token(engine, server.user_id) == f"s{len(server.syncs)}"


async def test_without_pacing_the_bot_syncs_again_at_once(engine: Engine) -> None:
    server = BusyServer()
    gateway: Any = server
    bot = Bot(gateway, engine, Clock(), "pw", sync_min_interval_ms=0)
    await _run_for(bot, 0.75)
    assert len(server.syncs) > 20
