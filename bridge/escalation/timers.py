"""SLA timers: one APScheduler date job per unacknowledged escalation's deadline (rebuilt from the
database at start-up, so a restart keeps every deadline), plus a periodic sweep; both re-page what
is overdue (``moderation.escalation.sla``) and wake the notifier."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.escalation.config import DeskConfig
from bridge.scheduler import Scheduler
from config.ids import UserID
from moderation import escalation as dom
from moderation.escalation import IllegalTransition
from spaces.staff import on_call

log = logging.getLogger(__name__)


class SlaTimers:
    def __init__(
        self, cfg: DeskConfig, db: DbLane, scheduler: Scheduler, clock: Clock, wake: Callable[[], None]
    ):
        self.cfg = cfg
        self.db = db
        self.scheduler = scheduler
        self.clock = clock
        self.wake = wake
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """The periodic sweep (call after the scheduler has started; then :meth:`rebuild`)."""
        self.scheduler.aps.add_job(
            self.sweep,
            "interval",
            seconds=self.cfg.sweep_seconds,
            id="escalation-sweep",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    def schedule(self, esc_id: str, deadline: datetime) -> None:
        if not self.scheduler.aps.running:
            return  # rebuild() restores every timer from the database
        self.scheduler.aps.add_job(
            self.sweep,
            "date",
            run_date=self.scheduler.to_wall(deadline),
            id=f"sla:{esc_id}",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def unschedule(self, esc_id: str) -> None:
        if self.scheduler.aps.running:
            with contextlib.suppress(Exception):  # JobLookupError: the timer already ran or never existed
                self.scheduler.aps.remove_job(f"sla:{esc_id}")

    async def rebuild(self) -> None:
        deadlines = await self.db(dom.active_deadlines)
        for esc_id, deadline in deadlines:
            self.schedule(esc_id, deadline)
        log.info("escalation timers rebuilt: %d active deadline(s)", len(deadlines))
        await self.sweep()

    def backup_rota(self, now: datetime) -> list[UserID]:
        """Who a re-page mentions: the on-call clinicians and the rota's fallback (the domain adds
        every clinician for imminent)."""
        rota = self.cfg.staff.rota
        return list(dict.fromkeys([*on_call(rota, now), *(UserID(u) for u in rota.fallback)]))

    async def sweep(self) -> list[str]:
        """Re-page every unacknowledged escalation past its SLA; returns their IDs."""
        async with self._lock:
            now = self.clock.now()
            backup = self.backup_rota(now)
            clinicians = self.cfg.staff.clinician_ids

            def work(s: Session) -> list[tuple[str, datetime, int]]:
                done = []
                for esc in dom.due_for_repage(s, now):
                    try:
                        dom.repage(
                            s,
                            esc.id,
                            now=now,
                            sla=self.cfg.tuning.sla,
                            backup=backup,
                            clinicians=clinicians,
                            webhook=self.cfg.webhook_enabled,
                        )
                    except IllegalTransition:
                        continue  # acknowledged meanwhile, or a stale timer
                    done.append((esc.id, esc.sla_deadline, esc.repage_count))
                return done

            repaged = await self.db(work)
        for esc_id, deadline, count in repaged:
            log.warning("escalation %s passed its SLA unacknowledged: re-page #%d", esc_id, count)
            self.schedule(esc_id, deadline)
        if repaged:
            self.wake()
        return [r[0] for r in repaged]
