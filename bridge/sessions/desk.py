"""Group sessions, run: timers for each dated session (reminders a day and 15 minutes before, the
opening at its start, the closing at its end), the room's posting level, attendance, and what
members and facilitators say about sessions.

Deadlines live in the database (``session_occurrence``); the timers are APScheduler date jobs placed
in wall time from it, at start-up and every ``sessions.refresh_seconds`` (new series and dates), and
again when Hearth's clock is moved (``clock_offset_file``). A moment missed while Hearth was down is
caught up by APScheduler's misfire policy when the jobs are placed again: an opening or closing runs
however late (``misfire_grace_time=None``, ``coalesce=True``), and the domain decides from ``now``
(``spaces.sessions.store.advance``) whether the room opens, closes, or the session was missed; a
reminder runs only while it still makes sense (the day-before one until the 15-minute one is due,
that one until the start) and never twice (``claim_reminder``).

"Present": a facilitator is there once they join the room, or send ``!start`` (in their private room
with Hearth, or in the room if they can post), from 15 minutes before the start until its end. Who
may lead: the people named for the series (``!session lead``); with nobody named, the moderators and
admins, except for guided exercise, which only its named professional leads. The room is open
(``events_default`` 0) while one of its sessions is open and read-only (50) otherwise; only the bot
changes power levels, and it changes nothing but ``events_default`` (``users`` stays as it is, so a
version 12 room keeps its creator out of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.pins import ensure_pinned
from bridge.scheduler import Scheduler
from bridge.sessions.commands import SessionCommands
from bridge.staff_room import Names, StaffRoom
from bridge.themes import shipped_themes
from config.settings import SessionsSettings
from spaces.models import ProvisionedRoom
from spaces.sessions import store
from spaces.sessions.schedule import closed_text, opened_text, reminder_text, schedule_message
from spaces.sessions.tables import SessionOccurrence, SessionSeries
from spaces.staff import Staff

log = logging.getLogger(__name__)

DmRoom = Callable[[str], Awaitable[str]]
OPEN, READ_ONLY = 0, 50  # events_default while a session is open, and between sessions


class SessionDesk:
    def __init__(
        self,
        cfg: SessionsSettings,
        engine: Engine,
        gateway: NioGateway,
        scheduler: Scheduler,
        clock: Clock,
        *,
        staff: Callable[[], Staff],
        dm_room: DmRoom,
        moderators_room: StaffRoom,
        logged_in: asyncio.Event,
    ):
        self.cfg = cfg
        self.db = DbLane(engine, "sessions-db", workers=1)
        self.gateway = gateway
        self.scheduler = scheduler
        self.clock = clock
        self._staff = staff  # asked each time: a reloaded staff file applies at once
        self.dm_room = dm_room
        self.moderators_room = moderators_room
        self.logged_in = logged_in
        self.names = Names(gateway)
        self.commands = SessionCommands(self)
        self._planned: dict[str, datetime] = {}  # job ID -> the Hearth time it is placed at
        self._room_ids: dict[str, str] = {}  # session room alias -> room ID (from the catalogue)
        self._aliases: dict[str, str] = {}  # room ID -> alias
        self._locks: dict[str, asyncio.Lock] = {}
        self._checked: set[str] = set()  # session rooms whose posting level this process has checked
        self.reminders_sent = 0

    @property
    def staff(self) -> Staff:
        """The staff file as last loaded well."""
        return self._staff()

    @property
    def hosts(self) -> frozenset[str]:
        """Who may host any session: the moderators and admins the staff file lists now."""
        return frozenset(self.staff.moderation_ids)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Place the timers now (rebuilt from the database) and every ``refresh_seconds`` (call after
        the scheduler started)."""
        aps = self.scheduler.aps
        aps.add_job(
            self.refresh,
            "interval",
            seconds=self.cfg.refresh_seconds,
            id="sessions-refresh",
            next_run_time=self.scheduler.now_wall(),
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.on_clock_shift(self.replace_timers)

    def close(self) -> None:
        self.db.close()

    def health(self) -> dict[str, Any]:
        return {"ok": True, "timers": len(self._planned), "rooms": len(self._room_ids)}

    async def _catalogue(self) -> None:
        """Which rooms hold sessions: group-session rooms, and any room a series names."""

        def read(s: Session) -> dict[str, str]:
            aliases = {r.room_alias for r in store.active_series(s)}
            rows = s.exec(select(ProvisionedRoom))
            return {r.alias: r.room_id for r in rows if r.kind == "group-session" or r.alias in aliases}

        self._room_ids = await self.db(read)
        self._aliases = {rid: alias for alias, rid in self._room_ids.items()}

    async def room_id(self, alias: str) -> str | None:
        if alias not in self._room_ids:
            await self._catalogue()
        return self._room_ids.get(alias)

    @property
    def horizon(self) -> timedelta:
        return timedelta(days=self.cfg.horizon_days)

    async def changed(self, alias: str) -> None:
        """A moderator added or ended a series in ``alias``: its dates and timers, the room's posting
        level and its pinned schedule follow at once."""
        await self.refresh()
        await self.settle(alias)
        await self.pin_schedule(alias)

    def _lock(self, alias: str) -> asyncio.Lock:
        return self._locks.setdefault(alias, asyncio.Lock())

    # --- timers ----------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Make the dates ahead, end one-off series that are over (their rooms' schedules change),
        and place a timer for every moment still to come, or missed and still to catch up."""
        now = self.clock.now()
        horizon = self.horizon

        def work(s: Session) -> tuple[list[SessionOccurrence], list[str]]:
            finished = store.finish_series(s, now)
            store.materialize(s, now, horizon)
            return store.pending(s), [r.room_alias for r in finished]

        occurrences, changed_rooms = await self.db(work)
        await self._catalogue()
        self._place(occurrences, now)
        for alias in dict.fromkeys(changed_rooms):
            await self.pin_schedule(alias)
        await self.close_strays()

    async def replace_timers(self) -> None:
        """The clock moved: every timer is placed again (in wall time); the ones now in the past run
        under their misfire policy, exactly as after a restart."""
        self._planned.clear()
        await self.refresh()

    def _place(self, occurrences: Sequence[SessionOccurrence], now: datetime) -> None:
        wanted: dict[
            str, tuple[datetime, timedelta | None, Callable[..., Awaitable[None]], tuple[str, ...]]
        ] = {}
        for occ in occurrences:
            if occ.status == "scheduled":
                wanted[f"session-open:{occ.id}"] = (occ.starts_at, None, self.boundary, (occ.id,))
                for kind in store.REMINDER_LEADS:
                    done = occ.reminded_day_at if kind == "day" else occ.reminded_soon_at
                    due, grace = store.reminder_at(occ, kind), store.reminder_grace(kind)
                    if done is None and now <= due + grace:
                        wanted[f"session-remind-{kind}:{occ.id}"] = (due, grace, self.remind, (occ.id, kind))
            wanted[f"session-close:{occ.id}"] = (occ.ends_at, None, self.boundary, (occ.id,))
        for job_id, (at, late, fn, args) in wanted.items():
            if self._planned.get(job_id) == at:
                continue
            self.scheduler.aps.add_job(
                fn,
                "date",
                run_date=self.scheduler.to_wall(at),
                args=args,
                id=job_id,
                replace_existing=True,
                coalesce=True,
                misfire_grace_time=None if late is None else int(late.total_seconds()),
            )
        self._planned = {job_id: w[0] for job_id, w in wanted.items()}

    async def boundary(self, occ_id: str) -> None:
        """A session's start or end (on time, or caught up late): settle its room."""

        def alias_of(s: Session) -> str | None:
            occ = s.get(SessionOccurrence, occ_id)
            row = s.get(SessionSeries, occ.series_id) if occ is not None else None
            return row.room_alias if row is not None else None

        alias = await self.db(alias_of)
        if alias is not None:
            await self.settle(alias)

    async def settle(self, alias: str) -> None:
        """Move the room's sessions on to where now puts them, set who may post, and say so."""
        await asyncio.wait_for(self.logged_in.wait(), 120)
        async with self._lock(alias):
            now = self.clock.now()
            horizon = self.horizon

            def work(
                s: Session,
            ) -> tuple[bool, list[tuple[store.Transition, store.SeriesView, datetime | None]]]:
                is_open, changes = store.settle_room(s, alias, now)
                out = []
                for ch in changes:
                    view = store.SeriesView.of(ch.series)
                    upcoming = [
                        t for t in view.recurrence.next_starts(now, 2, horizon) if t > ch.occurrence.starts_at
                    ]
                    out.append((ch, view, upcoming[0] if upcoming else None))
                return is_open, out

            is_open, changes = await self.db(work)
            room = await self.room_id(alias)
            if room is None:
                log.warning("session room %s is not in the catalogue; run `hearth spaces apply`", alias)
                return
            await self._set_posting(room, is_open)
            for ch, view, next_start in changes:
                occ = ch.occurrence
                log.info("session %s in %s: %s -> %s", occ.id, alias, ch.old, ch.new)
                if ch.new == "open":
                    text = opened_text(view, occ.ends_at)
                elif ch.new == "closed":
                    text = closed_text(view, next_start)
                else:
                    continue  # missed: nobody was there to tell
                await self._notice(room, text, f"hearth.session.{occ.id}.{ch.new}")

    async def _set_posting(self, room: str, is_open: bool) -> None:
        """events_default 0 while open, 50 between sessions; nothing else in the power levels moves."""
        want = OPEN if is_open else READ_ONLY
        try:
            levels = await self.gateway.get_state_event(room, "m.room.power_levels") or {}
            if levels.get("events_default") != want:
                await self.gateway.put_state(room, "m.room.power_levels", {**levels, "events_default": want})
                log.info("session room %s is now %s", room, "open for posting" if is_open else "read-only")
        except GatewayError as e:
            log.error("could not set who may post in session room %s: %s", room, e)

    async def _notice(self, room: str, text: str, txn: str) -> None:
        try:
            await self.gateway.send(room, {"msgtype": "m.notice", "body": text, "m.mentions": {}}, txn_id=txn)
        except GatewayError as e:
            log.warning("could not post a session notice in %s: %s", room, e)

    async def close_strays(self) -> None:
        """Each group-session room, the first time this process sees it (at start-up, or when
        `hearth spaces apply` has just made or upgraded it): read-only unless one of its sessions is
        open in the database (a room from before sessions existed was open to all). A room whose
        session is open is left to that session's closing timer."""
        await asyncio.wait_for(self.logged_in.wait(), 120)
        for alias, room in list(self._room_ids.items()):
            if alias in self._checked:
                continue
            async with self._lock(alias):
                if not await self.db(partial(store.has_open, alias=alias)):
                    await self._set_posting(room, False)
            self._checked.add(alias)

    # --- reminders -------------------------------------------------------------------------------

    async def remind(self, occ_id: str, kind: str) -> None:
        """The ``kind`` reminder ("day" or "soon") of one session, to each member who opted in."""
        now = self.clock.now()

        def work(s: Session) -> tuple[SessionOccurrence, SessionSeries, list[tuple[str, str | None]]] | None:
            claimed = store.claim_reminder(s, occ_id, kind, now)
            if claimed is None:
                return None
            occ, row = claimed
            people = []
            for user in store.subscribers(s, row.id):
                level = store.levels(s, user).get(row.space) if row.format == "exposure-practice" else None
                people.append((user, level))
            return occ, row, people

        claimed = await self.db(work)
        if claimed is None:
            return
        occ, row, people = claimed
        view = store.SeriesView.of(row)
        room = await self.room_id(row.room_alias)
        room_name = (await self.names.room(room) if room else None) or row.room_alias
        await asyncio.wait_for(self.logged_in.wait(), 120)
        sent = 0
        for user, level in people:
            text = reminder_text(view, occ.starts_at, kind, room_name, self.level_label(row.space, level))
            # m.text, so that it notifies (a notice is often silent); one per member, session and kind.
            content = {"msgtype": "m.text", "body": text, "m.mentions": {}}
            try:
                dm = await self.dm_room(user)
                await self.gateway.send(dm, content, txn_id=f"hearth.remind.{occ.id}.{kind}.{user}")
                sent += 1
            except (GatewayError, TimeoutError, OSError) as e:
                log.warning("could not send a session reminder: %s", e)
        self.reminders_sent += sent
        log.info("session %s: %s reminder sent to %d member(s)", occ.id, kind, sent)

    def level_label(self, space: str, level: str | None) -> str | None:
        """A level's label from the space's ladder (None when unknown)."""
        theme = shipped_themes().get(space)
        ladder = store.ladder(theme) if theme is not None else None
        if ladder is None or level is None:
            return None
        return next((lv.label for lv in ladder.levels if lv.id == level), None)

    # --- what happens in the rooms -----------------------------------------------------------

    async def handle_event(self, ev: TimelineEvent) -> None:
        """Bot handler: ``!session`` in the moderators' room; joins, posts and commands in session rooms."""
        if ev.sender == self.gateway.user_id:
            return
        content = ev.event.get("content") or {}
        if ev.type == "m.room.message" and str(content.get("body", "")).startswith("!session"):
            if self.moderators_room.room_id is None:  # a command in the first sync after start
                with contextlib.suppress(GatewayError, TimeoutError, OSError):
                    await asyncio.wait_for(self.moderators_room.ensure(), 10)
            if self.moderators_room.room_id == ev.room_id:
                await self.commands.moderator(ev, content)
                return
        alias = self._aliases.get(ev.room_id)
        if alias is None:
            return
        if ev.type == "m.room.member" and content.get("membership") == "join":
            before = ((ev.event.get("unsigned") or {}).get("prev_content") or {}).get("membership")
            if before != "join":  # a join, not a change of display name
                await self.joined(alias, ev.sender)
        elif ev.type == "m.room.message":
            await self.posted(alias, ev.sender)
            body = content.get("body")
            if isinstance(body, str) and body.startswith("!"):
                await self.commands.in_room(ev, alias, body)

    async def joined(self, alias: str, user: str) -> None:
        """A join during a session's window: its facilitator arrives (and may open it), or a member
        is counted as having come."""
        now = self.clock.now()

        def work(s: Session) -> bool:
            found = store.current(s, alias, now)
            if found is None:
                return False
            occ, row = found
            if store.may_lead(row, store.facilitators(s, row.id), user, self.hosts):
                return store.mark_present(s, occ, user, now)
            store.attend(s, occ, user, joined=True, posted=False, now=now)
            return False

        if await self.db(work):
            log.info("a facilitator arrived in %s", alias)
            await self.settle(alias)

    async def posted(self, alias: str, user: str) -> None:
        """A message while a session is open: its sender came (never what they wrote)."""
        now = self.clock.now()

        def work(s: Session) -> None:
            found = store.current(s, alias, now)
            if found is not None and found[0].status == "open":
                store.attend(s, found[0], user, joined=False, posted=True, now=now)

        await self.db(work)

    async def facilitate(self, user: str, *, start: bool) -> str:
        """``!start`` (I am here) or ``!end`` (finish early) from someone who leads a session now."""
        now = self.clock.now()

        def work(s: Session) -> list[tuple[str, SessionOccurrence, SessionSeries]]:
            out = []
            for row in store.active_series(s):
                found = store.current(s, row.room_alias, now)
                if found is None or found[1].id != row.id:
                    continue
                if not store.may_lead(row, store.facilitators(s, row.id), user, self.hosts):
                    continue
                occ = found[0]
                if start:
                    store.mark_present(s, occ, user, now)
                elif occ.status == "open" or occ.present_at is not None:
                    store.end_early(s, occ, now)
                else:
                    continue
                out.append((row.room_alias, occ, row))
            return out

        done = await self.db(work)
        if not done:
            if start:
                return "There is no session you lead starting within 15 minutes or on now."
            return "There is no session of yours on now to end."
        for alias, _, _ in done:
            await self.settle(alias)
        lines = []
        for _, occ, row in done:
            view = store.SeriesView.of(row)
            if not start:
                lines.append(f"{row.title} has ended; the room is read-only again. Thank you for leading it.")
            elif occ.starts_at <= now:
                lines.append(f"Thank you: {row.title} is open for posting now.")
            else:
                local = view.recurrence.local(occ.starts_at)
                lines.append(
                    f"Thank you: you're marked as here for {row.title}. The room opens at {local:%H:%M} "
                    f"{view.recurrence.timezone}."
                )
        return " ".join(lines)

    async def pin_schedule(self, alias: str) -> None:
        """Pin the room's schedule again if its series changed (nothing is sent when they did not)."""
        room = await self.room_id(alias)
        if room is None:
            return
        rows = await self.db(lambda s: [r for r in store.room_series(s, alias) if r.ended_at is None])
        try:
            if await ensure_pinned(
                self.gateway, room, schedule_message([store.SeriesView.of(r) for r in rows])
            ):
                log.info("pinned the new schedule of %s", alias)
        except GatewayError as e:
            log.warning("could not pin the schedule of %s: %s", alias, e)
