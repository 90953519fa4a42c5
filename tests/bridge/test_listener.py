"""The bot's sync loop: paced, so that a busy room does not cost Synapse one /sync per event."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from bridge.gateway import GatewayError, SyncBatch, TimelineEvent
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
    # (The last sync may have been cut short by the cancel before its batch was handled: a stopped bot
    # handles it after its restart.)
    handled = len(seen) + 1
    assert handled in (len(server.syncs), len(server.syncs) - 1)
    assert seen[0] == "$e2"  # the first sync of a fresh bot starts from now
    assert seen == [f"$e{n}" for n in range(2, handled + 1)]
    assert load_token(engine, server.user_id) == f"s{handled}"


async def test_without_pacing_the_bot_syncs_again_at_once(engine: Engine) -> None:
    server = BusyServer()
    gateway: Any = server
    bot = Bot(gateway, engine, Clock(), "pw", sync_min_interval_ms=0)
    await _run_for(bot, 0.75)
    assert len(server.syncs) > 20


class FlakyServer(BusyServer):
    """A homeserver whose first two syncs fail (it is restarting)."""

    async def sync(self, since: str | None, timeout_ms: int, first: bool = False) -> SyncBatch:
        self.syncs.append(time.monotonic())
        if len(self.syncs) <= 2:
            raise GatewayError("sync", "connection refused")
        return await super().sync(since, timeout_ms, first)


async def test_a_homeserver_that_does_not_answer_is_retried_with_backoff(engine: Engine) -> None:
    server = FlakyServer()
    gateway: Any = server
    bot = Bot(gateway, engine, Clock(), "pw", sync_min_interval_ms=0)
    await _run_for(bot, 2.5)
    assert len(server.syncs) > 3  # it came back after the two failures
    first_wait = server.syncs[1] - server.syncs[0]
    assert 0.25 <= first_wait <= 1.5  # 0.5 s, with jitter: a backoff, not a busy loop
    assert bot.status.last_error is None


async def test_a_batch_whose_handler_cannot_use_the_database_is_handled_again(engine: Engine) -> None:
    """A handler that meets a locked database must not lose its event: the batch is not recorded, and
    the same events are handled again once the database answers."""
    server = BusyServer()
    calls: list[str] = []
    locked = True

    async def handler(ev: TimelineEvent) -> None:
        calls.append(ev.event_id)
        if locked and ev.event_id == "$e2":
            raise OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))

    gateway: Any = server
    bot = Bot(gateway, engine, Clock(), "pw", handlers=[handler], sync_min_interval_ms=0)
    task = asyncio.create_task(bot.run())
    await asyncio.sleep(1.2)
    assert set(calls) == {"$e2"}
    assert len(calls) >= 2
    assert load_token(engine, server.user_id) == "s1"  # only the fresh bot's first (empty) batch
    assert bot.status.last_error == "handling a sync batch: the database is locked by another process"
    locked = False
    for _ in range(100):  # the next try comes after the backoff (at most 15 s; here about 2 s)
        if load_token(engine, server.user_id) not in ("s1", "s2"):
            break
        await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert "$e3" in calls
    assert load_token(engine, server.user_id) not in ("s1", "s2")
