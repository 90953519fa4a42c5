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
from datetime import timedelta
from typing import Any

import uvicorn
from sqlalchemy import Engine, delete
from sqlmodel import Session, col

from bridge import db
from bridge.actions import Actions
from bridge.capacity import CapacityCheck
from bridge.clock import SystemClock
from bridge.data_folder import DataFolder
from bridge.escalation.config import StaffIds
from bridge.escalation.desk import EscalationDesk
from bridge.gate import Gate
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.join import JoinDesk, purge_requests
from bridge.listener import Bot
from bridge.member_room import MemberRoom
from bridge.metrics import Metrics
from bridge.models import StaffSession
from bridge.moderators.desk import ModerationDesk
from bridge.remote_joins import RemoteJoins
from bridge.scheduler import Scheduler
from bridge.screening import Screening, invite_checks, load_pipeline
from bridge.sessions.desk import SessionDesk
from bridge.tasks import TaskGroup
from bridge.web.app import create_app
from bridge.web.auth import StaffAuth
from bridge.welcome import Welcome
from config.settings import Settings
from moderation import casework, escalation, store
from spaces.sessions import store as session_store

log = logging.getLogger(__name__)

BOT_FRESH_SECONDS = 90


# Synapse keeps an idle connection to the gate in its pool for 120 s (``cachedConnectionTimeout`` in
# synapse/http/client.py) and does not retry a POST on a connection that was closed under it. Were Hearth to
# close idle connections first (uvicorn's default is 5 s), a gate call could be sent on a connection closing
# at that moment and fail: a join, fail-closed, refused "Failed to connect to antispam server". Outliving
# Synapse's idle timeout leaves the closing to Synapse, so that race cannot happen.
SYNAPSE_IDLE_CONNECTION_SECONDS = 120


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture: the service installs handlers and stops in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HearthService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.clock = SystemClock(settings.clock_offset_file)
        self.metrics = Metrics()
        self.tasks = TaskGroup()
        self.engine: Engine = db.make_engine(settings.effective_database_url, settings.database_busy_seconds)
        self.data_folder = DataFolder(
            settings.data_dir, settings.effective_database_url, settings.data_min_free_mb
        )
        self.gateway = NioGateway(settings.matrix.homeserver_url, settings.matrix.bot_user_id)
        self.scheduler = Scheduler(self.clock)
        self.gate = Gate()
        # Crisis escalation: screening and actions call the desk through its port (`raise_for`).
        # The desk loads the staff file and the crisis resources, and reloads them on SIGHUP: every
        # other part asks it for the current ones (`current_staff`, a live `StaffIds` view), never
        # keeps a copy, so a reload applies everywhere at once.
        self.desk = EscalationDesk(
            settings, self.engine, self.gateway, self.scheduler, self.clock, self.tasks
        )
        everyone = StaffIds(lambda: self.desk.everyone)  # moderators and clinicians
        self.auth = StaffAuth(settings, self.desk.current_staff, self.engine, self.clock)
        self.join = JoinDesk(
            self.gateway,
            self.clock,
            per_address=settings.join.tokens_per_address,
            expiry=timedelta(hours=settings.join.token_expiry_hours),
            engine=self.engine,
            request_expiry=timedelta(hours=settings.join.request_expiry_hours),
        )
        # Volunteer moderators: their room, review cards, sanctions with expiry, appeals.
        self.moderators = ModerationDesk(
            settings,
            self.engine,
            self.gateway,
            self.scheduler,
            self.clock,
            staff=self.desk.current_staff,
            dm_room=self.desk.dm_room,
        )
        # Group sessions: timers from the database, rooms opened and closed, reminders, attendance.
        self.sessions = SessionDesk(
            settings.sessions,
            self.engine,
            self.gateway,
            self.scheduler,
            self.clock,
            staff=self.desk.current_staff,
            dm_room=self.desk.dm_room,
            moderators_room=self.moderators.room,
            logged_in=self.desk.logged_in,
        )
        self.welcome = Welcome(
            self.engine,
            self.gateway,
            self.clock,
            staff=StaffIds(lambda: self.desk.cfg.protected),
            dm_room=self.desk.dm_room,
            resources_for=self.desk.resources_for,
            hold=settings.join.hold_until_agreed,
        )
        self.member_room = MemberRoom(
            self.engine,
            self.gateway,
            self.clock,
            self.desk.direct_rooms,
            lambda: self.desk.resources,
            self.desk.default_region,
            self.desk,
            appeals=self.moderators,
            welcome=self.welcome,
            forgetters=[self.welcome.forget],
            sessions=self.sessions.commands,
        )
        self.capacity = CapacityCheck(
            self.engine, self.gateway, bot=settings.matrix.bot_user_id, staff=everyone
        )
        self.gate.add_check("user_may_join_room", self.capacity)
        self.gate.add_check("user_may_join_room", self.welcome.join_check)  # never refuses
        # Other servers' members join without ``user_may_join_room``: the bot checks after the join.
        self.remote_joins = RemoteJoins(self.gateway, self.capacity, self.welcome, staff=everyone)
        self.actions = Actions(
            self.engine,
            self.gateway,
            self.clock,
            dm_room=self.desk.dm_room,
            escalations=self.desk,
            resources_for=self.desk.resources_for,
            flag_retention=timedelta(days=settings.moderation.flag_retention_days),
            moderators=self.moderators,
            sanctions=self.moderators.sanctions,
        )
        # Moderation (issue 4): the pipeline at the gate, and after-delivery actions by the bot.
        self.screening = Screening(
            self.engine,
            self.clock,
            self.metrics,
            settings.matrix.bot_user_id,
            settings.gate.budget_ms,
            lambda: load_pipeline(settings),
            max_batch=settings.moderation.max_batch,
            escalations=self.desk,
            tasks=self.tasks,
            sanctions=self.moderators.sanctions,
            moderators=self.moderators,
            explain=self.actions.explain_refusal,
            welcome=self.welcome,
            new_member_mentions=settings.moderation.new_member_mention_limit,
            staff=everyone,
            withdraw=self.actions.withdraw_federated,
        )
        self.screening.after_delivery = self.actions.carry_out
        may_invite, invite_event = invite_checks(settings, everyone)
        self.gate.add_check("check_event_for_spam", invite_event)
        self.gate.add_check("check_event_for_spam", self.screening.gate_check)
        # A remote member's join, as it arrives over federation (never refuses).
        self.gate.add_check("check_event_for_spam", self.welcome.federated_join_check)
        self.gate.add_check("user_may_invite", may_invite)
        self._bot_task: asyncio.Task[None] | None = None
        self.bot = Bot(
            self.gateway,
            self.engine,
            self.clock,
            settings.matrix.bot_password.get_secret_value(),
            handlers=[
                self._count_event,
                self.desk.handle_event,
                self.moderators.handle_event,
                self.remote_joins.handle_event,
                self.welcome.handle_event,
                self.member_room.handle_event,
                self.sessions.handle_event,
            ],
            concurrent_handlers=[self.screening.on_event],
            sync_timeout_ms=settings.matrix.sync_timeout_ms,
            sync_min_interval_ms=settings.matrix.sync_min_interval_ms,
            on_login=self._after_login,
            session_file=settings.data_dir / "bot_session.json",
        )

    async def _after_login(self) -> None:
        await self.gateway.exempt_from_ratelimit(self.gateway.user_id)
        try:
            await self.gateway.silence_notifications()
        except GatewayError as e:  # an optimisation: the bot works without it
            log.warning("could not silence the bot's push notifications: %s", e)
        try:
            if await self.gateway.ensure_display_name(self.settings.matrix.bot_display_name):
                log.info("bot display name set to %r", self.settings.matrix.bot_display_name)
        except GatewayError as e:  # cosmetic: members still see the bot's Matrix ID
            log.warning("could not set the bot's display name: %s", e)
        self.desk.logged_in.set()
        self.tasks.create(self.moderators.room.prepare(), name="moderators-room")

    async def _count_event(self, ev: TimelineEvent) -> None:
        self.metrics.events_handled.labels(type=ev.type).inc()

    async def health(self) -> dict[str, dict[str, Any]]:
        parts: dict[str, dict[str, Any]] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(db.ping, self.engine), 3)
            parts["database"] = {"ok": True, "dialect": self.engine.dialect.name}
        except Exception as e:  # any failure to reach the database is "down", with the reason
            parts["database"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        parts["data_folder"] = await asyncio.to_thread(self.data_folder.check)
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
        parts["moderation"] = self.screening.health()
        parts["moderators"] = self.moderators.health()
        parts["sessions"] = self.sessions.health()
        try:
            parts["escalation"] = await asyncio.wait_for(self.desk.health(), 3)
        except Exception as e:  # the outbox could not be read: escalations would not go out
            parts["escalation"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        return parts

    def _reload(self) -> None:
        """SIGHUP: read the moderation policy and rules, the staff file and the crisis resources again
        (a broken file keeps the running one; see ``Screening.reload`` and ``EscalationDesk.reload``)."""
        log.info("SIGHUP: reloading the moderation policy and rules, the staff file and the crisis resources")
        self.tasks.create(self.screening.reload(self.settings.moderation.config_dir), name="reload")
        self.tasks.create(self._reload_staff_and_resources(), name="reload-staff")

    async def _reload_staff_and_resources(self) -> None:
        await self.desk.reload(self.settings)
        await self.moderators.staff_reloaded()  # newly listed moderators to their room, if any

    async def run(self) -> None:
        await asyncio.to_thread(db.migrate, self.engine)
        log.info("database ready (%s)", self.engine.dialect.name)
        server = _Server(
            uvicorn.Config(
                create_app(self),
                host=self.settings.http.host,
                port=self.settings.http.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_keep_alive=SYNAPSE_IDLE_CONNECTION_SECONDS + 30,
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, server, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        await self.moderators.load()  # the mutes in force, before the gate answers
        await self.welcome.load()  # who is still to accept a space's guidelines
        self.scheduler.start()
        self.desk.start()
        self.moderators.start()
        self.sessions.start()
        self.tasks.create(self.screening.start(), name="screening-start")
        self.scheduler.every(self.actions.unmute_due, "unmute", seconds=30)
        self.scheduler.every(self._purge, "retention", at_start=True, hours=1)
        # The log says when the data folder runs out of space, without anyone asking /healthz.
        self.scheduler.every(self.data_folder.check, "data-folder", at_start=True, seconds=10)
        self._bot_task = self.tasks.create(self.bot.run(), name="bot-sync")
        try:
            await server.serve()
        finally:
            await self.stop()

    def _request_stop(self, server: uvicorn.Server, sig: signal.Signals) -> None:
        log.info("received %s; shutting down", sig.name)
        server.should_exit = True

    async def _purge(self) -> None:
        """Retention, hourly and at start: flagged message text past its purge date is deleted,
        resolved escalations past ``excerpt_retention_days`` lose their excerpt (the audit stays),
        appeals past ``appeal_retention_days`` lose the member's words (the decision stays), and who
        came to sessions that ended ``sessions.attendance_retention_days`` ago is forgotten (the
        counts stay)."""
        now = self.clock.now()

        attendance_before = now - timedelta(days=self.settings.sessions.attendance_retention_days)

        def purge(session: Session) -> tuple[int, int, int, int]:
            flagged = store.purge_expired(session, now)
            ended = now - timedelta(days=1)  # sign-ins that ended a day ago are forgotten
            session.execute(delete(StaffSession).where(col(StaffSession.expires_at) < ended))
            appeals = casework.purge_appeal_text(session, now)
            attendance = session_store.purge_attendance(session, attendance_before)
            purge_requests(session, now)  # held sign-up requests past their time
            return flagged, escalation.purge_excerpts(session, now), appeals, attendance

        flagged, excerpts, appeals, attendance = await db.run_db(self.engine, purge)
        if flagged or excerpts or appeals or attendance:
            log.info(
                "retention: purged %d flagged messages, %d escalation excerpts, %d appeals' words and "
                "%d session attendees",
                flagged,
                excerpts,
                appeals,
                attendance,
            )

    async def stop(self) -> None:
        # The bot first: a batch it is handling must not meet a closed pipeline and then be recorded
        # as handled (its messages would never be screened); cancelled, it is handled after restart.
        if self._bot_task is not None:
            self._bot_task.cancel()
            await asyncio.wait([self._bot_task], timeout=10)
        await self.screening.close()
        await self.tasks.close()
        self.scheduler.shutdown()  # before the desk closes its database lane: no sweep may start after
        await self.desk.close()
        self.moderators.close()
        self.welcome.close()
        self.sessions.close()
        await self.auth.close()
        await self.gateway.close()
        self.engine.dispose()
        log.info("stopped cleanly")
