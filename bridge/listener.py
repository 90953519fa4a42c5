"""The bot's sync loop: logs in, long-polls /sync, hands timeline events to handlers, and saves the
sync token in the database after each handled batch, so a restart neither replays nor misses events.

Handlers are idempotent by event ID (they may see an event again only if the process died between
handling a batch and saving its token). The ``seen_event`` ledger records each handled event and how
many times it was delivered to the handlers, which is what the exactly-once tests assert on.

Failures are waited out, never skipped (tenacity: exponential backoff with jitter, 0.5 s up to 15 s):
a homeserver that does not answer (login, /sync), and a database that cannot be used just now
(locked, full, unreachable; ``bridge.db.unavailable``). A batch in which a handler met such a
database failure is not recorded: it is handled again, whole, once the database is back, so no
message goes unscreened because its handler could not write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from bridge.clock import Clock
from bridge.db import unavailable
from bridge.gateway import GatewayError, NioGateway, SyncBatch, TimelineEvent
from bridge.models import SeenEvent, SyncState

log = logging.getLogger(__name__)

Handler = Callable[[TimelineEvent], Awaitable[None]]
T = TypeVar("T")

HOMESERVER_ERRORS = (TimeoutError, GatewayError, OSError)
RETRY_WAIT = wait_exponential_jitter(multiplier=0.5, max=15, jitter=0.5)


class HandlerDatabaseError(Exception):
    """A handler could not use the database (``reason``): the batch is handled again later."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _homeserver_failure(e: BaseException) -> bool:
    return isinstance(e, HOMESERVER_ERRORS)


def _database_failure(e: BaseException) -> bool:
    return isinstance(e, HandlerDatabaseError) or unavailable(e) is not None


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

    async def _retrying(
        self, what: str, fn: Callable[[], Awaitable[T]], failure: Callable[[BaseException], bool]
    ) -> T:
        """``fn()``, again and again with backoff while it fails the way ``failure`` recognises."""

        def note(state: RetryCallState) -> None:
            e = state.outcome.exception() if state.outcome else None
            if isinstance(e, HandlerDatabaseError):
                reason = e.reason
            else:
                reason = (unavailable(e) if e is not None else None) or f"{type(e).__name__}: {e}"
            delay = state.next_action.sleep if state.next_action else 0.0
            self.status.last_error = f"{what}: {reason}"
            log.warning("%s failed (%s); retrying in %.1fs", what, reason, delay)

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(failure), wait=RETRY_WAIT, before_sleep=note, reraise=True
        ):
            with attempt:
                return await fn()
        raise AssertionError("unreachable: tenacity retries until fn returns")

    async def _login(self) -> None:
        await self._retrying(
            "bot login",
            lambda: self.gateway.restore_or_login(self.password, self.session_file, "Hearth bot"),
            _homeserver_failure,
        )
        self.status.logged_in = True
        log.info("bot logged in as %s", self.gateway.user_id)
        if self.on_login:
            await self.on_login()

    async def run(self) -> None:
        await self._login()
        user = self.gateway.user_id
        since = await self._retrying(
            "reading the sync token",
            lambda: asyncio.to_thread(load_token, self.engine, user),
            _database_failure,
        )
        while True:
            first = since is None
            started = time.monotonic()
            timeout = 0 if first else self.sync_timeout_ms
            batch = await self._retrying(
                "sync",
                partial(self.gateway.sync, since, timeout, first=first),
                _homeserver_failure,
            )
            if first:
                # A fresh bot starts from now: history before it existed is not replayed.
                batch.timeline = []
            await self._retrying(
                "handling a sync batch", partial(self._handle_and_record, batch), _database_failure
            )
            since = batch.next_batch
            self.status.syncs += 1
            self.status.last_sync_at = self.clock.now()
            self.status.last_error = None
            self.synced.set()
            rest = self.sync_min_interval - (time.monotonic() - started)
            if rest > 0:  # events arriving meanwhile come together in the next sync
                await asyncio.sleep(rest)

    async def _handle_and_record(self, batch: SyncBatch) -> None:
        """Hand the batch to every handler, then save its events and token in one transaction; a
        handler's database failure raises :class:`HandlerDatabaseError` before anything is saved."""
        failures: list[str] = []
        await self._handle(batch, failures)
        if failures:
            raise HandlerDatabaseError(failures[0])
        await asyncio.to_thread(record_batch, self.engine, self.gateway.user_id, batch, self.clock.now())

    async def _handle(self, batch: SyncBatch, failures: list[str]) -> None:
        for room_id in batch.invited_rooms:
            try:
                await self.gateway.join(room_id)
            except GatewayError as e:
                log.warning("could not accept invite to %s: %s", room_id, e)
        # Concurrent handlers see every event of the batch at once (the screening pipeline batches
        # them into one inference); ordered handlers (staff commands) then see them one by one.
        for handler in self.concurrent_handlers:
            await asyncio.gather(*(self._call(handler, ev, failures) for ev in batch.timeline))
        for ev in batch.timeline:
            for handler in self.handlers:
                await self._call(handler, ev, failures)

    @staticmethod
    async def _call(handler: Handler, ev: TimelineEvent, failures: list[str]) -> None:
        name = getattr(handler, "__name__", handler)
        try:
            await handler(ev)
        except Exception as e:
            reason = unavailable(e)
            if reason is not None:  # waited out: the batch is handled again (handlers are idempotent)
                failures.append(reason)
                log.warning("handler %s could not use the database on %s: %s", name, ev.event_id, reason)
                return
            # One broken handler must not stop the bot; the failure is logged with its event ID.
            log.exception("handler %s failed on %s", name, ev.event_id)
