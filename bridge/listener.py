"""The bot's sync loop: logs in, long-polls /sync, hands timeline events to handlers, and saves the
sync token in the database after each handled batch, so a restart neither replays nor misses events.

Handlers are idempotent by event ID (they may see an event again only if the process died between
handling a batch and saving its token). The ``seen_event`` ledger records each handled event and how
many times it was delivered to the handlers, which is what the exactly-once tests assert on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from bridge.clock import Clock
from bridge.gateway import GatewayError, NioGateway, SyncBatch, TimelineEvent
from bridge.models import SeenEvent, SyncState

log = logging.getLogger(__name__)

Handler = Callable[[TimelineEvent], Awaitable[None]]


@dataclass
class BotStatus:
    logged_in: bool = False
    syncs: int = 0
    last_sync_at: datetime | None = None
    last_error: str | None = None


def load_token(engine: Engine, user_id: str) -> str | None:
    with Session(engine) as s:
        row = s.get(SyncState, user_id)
        return row.next_batch if row else None


def record_batch(engine: Engine, user_id: str, batch: SyncBatch, now: datetime) -> None:
    """Save the handled events and the new sync token in one transaction."""
    with Session(engine) as s:
        for ev in batch.timeline:
            if not ev.event_id:
                continue
            seen = s.get(SeenEvent, ev.event_id)
            if seen:
                seen.times_seen += 1
            else:
                s.add(
                    SeenEvent(
                        event_id=ev.event_id,
                        room_id=ev.room_id,
                        sender=ev.sender,
                        event_type=ev.type,
                        first_seen_at=now,
                    )
                )
        state = s.get(SyncState, user_id)
        if state:
            state.next_batch, state.updated_at = batch.next_batch, now
        else:
            s.add(SyncState(user_id=user_id, next_batch=batch.next_batch, updated_at=now))
        s.commit()


class Bot:
    """Runs the sync loop until cancelled."""

    def __init__(
        self,
        gateway: NioGateway,
        engine: Engine,
        clock: Clock,
        password: str,
        handlers: Sequence[Handler] = (),
        sync_timeout_ms: int = 30000,
        on_login: Callable[[], Awaitable[None]] | None = None,
        session_file: Path | None = None,
        concurrent_handlers: Sequence[Handler] = (),
        sync_min_interval_ms: int = 0,
    ):
        self.gateway = gateway
        self.engine = engine
        self.clock = clock
        self.password = password
        self.handlers = list(handlers)
        self.concurrent_handlers = list(concurrent_handlers)
        self.sync_timeout_ms = sync_timeout_ms
        # Without a pause, each new event wakes a /sync of every room the bot is in: at 20 messages/s
        # that was about a sixth of Synapse's Python time (py-spy), as much as the sends themselves.
        self.sync_min_interval = sync_min_interval_ms / 1000
        self.on_login = on_login
        self.session_file = session_file
        self.status = BotStatus()
        self.synced = asyncio.Event()

    async def _login(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.gateway.restore_or_login(self.password, self.session_file, "Hearth bot")
                self.status.logged_in = True
                log.info("bot logged in as %s", self.gateway.user_id)
                if self.on_login:
                    await self.on_login()
                return
            except (TimeoutError, GatewayError, OSError) as e:
                self.status.last_error = f"login: {e}"
                log.warning("bot login failed (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15)

    async def run(self) -> None:
        await self._login()
        user = self.gateway.user_id
        since = await asyncio.to_thread(load_token, self.engine, user)
        delay = 0.5
        while True:
            first = since is None
            started = time.monotonic()
            try:
                batch = await self.gateway.sync(since, 0 if first else self.sync_timeout_ms, first=first)
            except (TimeoutError, GatewayError, OSError) as e:
                self.status.last_error = f"sync: {e}"
                log.warning("sync failed (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15)
                continue
            delay = 0.5
            if first:
                # A fresh bot starts from now: history before it existed is not replayed.
                batch.timeline = []
            await self._handle(batch)
            await asyncio.to_thread(record_batch, self.engine, user, batch, self.clock.now())
            since = batch.next_batch
            self.status.syncs += 1
            self.status.last_sync_at = self.clock.now()
            self.status.last_error = None
            self.synced.set()
            rest = self.sync_min_interval - (time.monotonic() - started)
            if rest > 0:  # events arriving meanwhile come together in the next sync
                await asyncio.sleep(rest)

    async def _handle(self, batch: SyncBatch) -> None:
        for room_id in batch.invited_rooms:
            try:
                await self.gateway.join(room_id)
            except GatewayError as e:
                log.warning("could not accept invite to %s: %s", room_id, e)
        # Concurrent handlers see every event of the batch at once (the screening pipeline batches
        # them into one inference); ordered handlers (staff commands) then see them one by one.
        for handler in self.concurrent_handlers:
            await asyncio.gather(*(self._call(handler, ev) for ev in batch.timeline))
        for ev in batch.timeline:
            for handler in self.handlers:
                await self._call(handler, ev)

    @staticmethod
    async def _call(handler: Handler, ev: TimelineEvent) -> None:
        try:
            await handler(ev)
        except Exception:
            # One broken handler must not stop the bot; the failure is logged with its event ID.
            log.exception("handler %s failed on %s", getattr(handler, "__name__", handler), ev.event_id)
