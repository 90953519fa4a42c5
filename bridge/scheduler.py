"""APScheduler wiring. Jobs are coroutines on the service's event loop; their deadlines live in the
database, so jobs are rebuilt from it at start-up (the scheduler itself keeps nothing)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bridge.clock import Clock

log = logging.getLogger(__name__)


class Scheduler:
    """Thin owner of an ``AsyncIOScheduler`` with a heartbeat job that proves jobs really run."""

    HEARTBEAT_SECONDS = 5

    def __init__(self, clock: Clock):
        self.clock = clock
        self.aps = AsyncIOScheduler(timezone=UTC)
        self.last_heartbeat: datetime | None = None
        self._offset: timedelta | None = None
        self._shift_listeners: list[Callable[[], Awaitable[None]]] = []

    def on_clock_shift(self, listener: Callable[[], Awaitable[None]]) -> None:
        """Call ``listener`` when Hearth's clock moves against the wall clock (``clock_offset_file``, in
        drills and tests), noticed within a heartbeat: jobs placed in wall time (:meth:`to_wall`) are
        then placed again, and those now in the past run under their misfire policy, as after a restart."""
        self._shift_listeners.append(listener)

    def start(self) -> None:
        self.aps.add_job(
            self._heartbeat,
            "interval",
            seconds=self.HEARTBEAT_SECONDS,
            id="heartbeat",
            next_run_time=datetime.now(UTC),
            replace_existing=True,
            coalesce=True,
        )
        self.aps.start()

    def every(
        self, func: Callable[[], Any], job_id: str, *, at_start: bool = False, **interval: float
    ) -> None:
        """Run ``func`` every ``interval`` (``seconds=``, ``hours=``, ...), never two at once, missed runs
        coalesced; ``at_start``: also at once."""
        self.aps.add_job(
            func,
            "interval",
            id=job_id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            **({"next_run_time": self.now_wall()} if at_start else {}),
            **interval,
        )

    def to_wall(self, when: datetime) -> datetime:
        """A deadline in Hearth's clock as APScheduler's wall-clock time (they differ by the offset of
        ``clock_offset_file``, in drills and tests)."""
        return when - (self.clock.now() - datetime.now(UTC))

    def now_wall(self) -> datetime:
        """Now, for ``next_run_time`` ("run at once")."""
        return datetime.now(UTC)

    async def _heartbeat(self) -> None:
        self.last_heartbeat = self.clock.now()
        offset = self.last_heartbeat - datetime.now(UTC)
        shifted = self._offset is not None and abs(offset - self._offset) > timedelta(seconds=1)
        self._offset = offset
        if shifted:
            log.warning("the clock moved by %.0f s: placing wall-time jobs again", offset.total_seconds())
            for listener in self._shift_listeners:
                try:
                    await listener()
                except Exception:  # one listener's failure must not stop the heartbeat
                    log.exception("clock-shift listener %r failed", listener)

    def shutdown(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)

    def health(self) -> dict[str, object]:
        now = self.clock.now()
        fresh = (
            self.last_heartbeat is not None
            and (now - self.last_heartbeat).total_seconds() < 3 * self.HEARTBEAT_SECONDS
        )
        return {
            "ok": bool(self.aps.running and fresh),
            "running": self.aps.running,
            "jobs": len(self.aps.get_jobs()) if self.aps.running else 0,
            "last_heartbeat": self.last_heartbeat.isoformat() if self.last_heartbeat else None,
        }
