"""Wiring of the Hearth process: one asyncio loop running uvicorn, the nio bot and the scheduler.

Start order: database (migrated) -> scheduler -> bot task -> HTTP server. Stop order is the reverse,
on SIGTERM or SIGINT: the server stops accepting, tasks are cancelled (the sync token of every handled
batch is already saved), the scheduler shuts down, connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn
from sqlalchemy import Engine

from bridge import db
from bridge.clock import SystemClock
from bridge.gate import Gate
from bridge.gateway import NioGateway, TimelineEvent
from bridge.listener import Bot
from bridge.metrics import Metrics
from bridge.scheduler import Scheduler
from bridge.tasks import TaskGroup
from bridge.web.app import create_app
from config.settings import Settings

log = logging.getLogger(__name__)

BOT_FRESH_SECONDS = 90


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture: the service installs handlers and stops in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HearthService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.clock = SystemClock()
        self.metrics = Metrics()
        self.tasks = TaskGroup()
        self.engine: Engine = db.make_engine(settings.effective_database_url)
        self.gateway = NioGateway(settings.matrix.homeserver_url, settings.matrix.bot_user_id)
        self.scheduler = Scheduler(self.clock)
        self.gate = Gate()
        self.bot = Bot(
            self.gateway, self.engine, self.clock, settings.matrix.bot_password.get_secret_value(),
            handlers=[self._count_event], sync_timeout_ms=settings.matrix.sync_timeout_ms,
            on_login=self._after_login, session_file=settings.data_dir / "bot_session.json",
        )

    async def _after_login(self) -> None:
        await self.gateway.exempt_from_ratelimit(self.gateway.user_id)

    async def _count_event(self, ev: TimelineEvent) -> None:
        self.metrics.events_handled.labels(type=ev.type).inc()

    async def health(self) -> dict[str, dict[str, Any]]:
        parts: dict[str, dict[str, Any]] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(db.ping, self.engine), 3)
            parts["database"] = {"ok": True, "dialect": self.engine.dialect.name}
        except Exception as e:  # any failure to reach the database is "down", with the reason
            parts["database"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        hs_ok = await self.gateway.reachable()
        parts["homeserver"] = {"ok": hs_ok, "url": self.settings.matrix.homeserver_url}
        st = self.bot.status
        age = (self.clock.now() - st.last_sync_at).total_seconds() if st.last_sync_at else None
        fresh_limit = BOT_FRESH_SECONDS + self.settings.matrix.sync_timeout_ms / 1000
        parts["bot"] = {
            "ok": bool(st.logged_in and age is not None and age < fresh_limit and hs_ok),
            "user_id": self.gateway.user_id,
            "logged_in": st.logged_in,
            "syncs": st.syncs,
            "last_sync_age_seconds": round(age, 1) if age is not None else None,
            "last_error": st.last_error,
        }
        parts["scheduler"] = self.scheduler.health()
        return parts

    async def run(self) -> None:
        await asyncio.to_thread(db.migrate, self.engine)
        log.info("database ready (%s)", self.engine.dialect.name)
        server = _Server(uvicorn.Config(
            create_app(self), host=self.settings.http.host, port=self.settings.http.port,
            log_config=None, access_log=False, lifespan="off",
        ))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, server, sig)
        self.scheduler.start()
        self.tasks.create(self.bot.run(), name="bot-sync")
        try:
            await server.serve()
        finally:
            await self.stop()

    def _request_stop(self, server: uvicorn.Server, sig: signal.Signals) -> None:
        log.info("received %s; shutting down", sig.name)
        server.should_exit = True

    async def stop(self) -> None:
        await self.tasks.close()
        self.scheduler.shutdown()
        await self.gateway.close()
        self.engine.dispose()
        log.info("stopped cleanly")
