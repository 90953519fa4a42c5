"""Sanctions carried out on Matrix: warn, mute and ban across a space (or every Hearth space), with
expiry from the database.

A mute is enforced at the gate, not with power levels: the muted member's messages are refused with a
kind message that says until when and why, except a message the crisis detector reads as risk, which
is always delivered and escalated (a power-level mute would have silenced it). A ban is a Matrix ban
with the reason in every room of the scope; lifting it unbans exactly those rooms. Expiry is a
scheduler sweep over the ``sanction`` table, so a restart keeps every deadline. The member is told
privately and kindly, with how to appeal. Staff are never sanctioned by the bot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Any

from sqlmodel import Session, col, select

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.gateway import GatewayError, NioGateway
from bridge.models import RoomMember
from bridge.moderators import render
from moderation import casework as cw
from moderation.casework import ALL_SPACES, SYSTEM_ACTOR, ActiveMute, NotPermitted, Sanction, SanctionKind
from spaces.models import ProvisionedRoom, ProvisionedSpace
from spaces.staff import Staff

log = logging.getLogger(__name__)

DEFAULT = object()  # "no duration given": the escalating default applies

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Imposed:
    sanction: Sanction
    duration: timedelta | None
    earlier: int  # sanctions of this kind the member had before
    failed_rooms: tuple[str, ...] = ()


class Sanctions:
    def __init__(
        self,
        db: DbLane,
        gateway: NioGateway,
        clock: Clock,
        staff: Callable[[], Staff],
        defaults: cw.SanctionDefaults,
        *,
        bot_user: str,
        notify_member: Notify,
    ):
        self.db = db
        self.gateway = gateway
        self.clock = clock
        self._staff = staff  # asked each time: a reloaded staff file applies at once
        self.defaults = defaults
        self.bot_user = bot_user
        self.notify_member = notify_member
        self._mutes: dict[str, list[ActiveMute]] = {}
        self._space_names: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @property
    def staff(self) -> Staff:
        """The staff file as last loaded well."""
        return self._staff()

    @property
    def tz(self) -> tzinfo:
        """How a sanction's end is shown: the moderator rota's time zone (the clinicians' when none)."""
        return self.staff.moderation_zone

    # --- the gate's question ----------------------------------------------------------------

    def muted(self, user: str, space: str | None) -> ActiveMute | None:
        """The mute in force for ``user`` in ``space`` (answered from memory: the gate's hot path)."""
        now = self.clock.now()
        for m in self._mutes.get(user, ()):
            if m.until > now and m.covers(space):
                return m
        return None

    async def muted_notice(self, mute: ActiveMute, space: str | None) -> str:
        """The kind words for a muted member whose message was refused or removed."""
        return render.muted_refusal(
            await self.space_name(space or mute.scope), mute.until, mute.reason, self.tz
        )

    async def refresh(self) -> None:
        now = self.clock.now()
        self._mutes = await self.db(lambda s: cw.active_mutes(s, now))

    # --- scope --------------------------------------------------------------------------------

    async def spaces_of(self, user: str) -> list[str]:
        """The spaces whose rooms ``user`` is in now (the bot's membership records)."""

        def read(s: Session) -> list[str]:
            q = (
                select(ProvisionedRoom.space_slug)
                .join(RoomMember, col(RoomMember.room_id) == col(ProvisionedRoom.room_id))
                .where(RoomMember.user_id == user)
            )
            return sorted(set(s.exec(q)))

        return await self.db(read)

    async def rooms_of(self, scope: str) -> list[str]:
        """Every room of a space (the space itself first), or of every space for ``*``."""

        def read(s: Session) -> list[str]:
            spaces = select(ProvisionedSpace)
            rooms = select(ProvisionedRoom)
            if scope != ALL_SPACES:
                spaces = spaces.where(ProvisionedSpace.theme_slug == scope)
                rooms = rooms.where(ProvisionedRoom.space_slug == scope)
            return [sp.room_id for sp in s.exec(spaces)] + [r.room_id for r in s.exec(rooms)]

        return await self.db(read)

    async def space_name(self, scope: str) -> str:
        if scope == ALL_SPACES:
            return "all of Hearth's spaces"
        if scope in self._space_names:
            return self._space_names[scope]

        def read(s: Session) -> str | None:
            row = s.get(ProvisionedSpace, scope)
            return row.alias if row is not None else None

        alias = await self.db(read)
        name = f"{scope.replace('-', ' ')} ({alias})" if alias else scope
        self._space_names[scope] = name
        return name

    # --- imposing and lifting -------------------------------------------------------------------

    def protects(self, user: str) -> bool:
        """Staff (every role) and the bot are never sanctioned by the bot."""
        return user in self.staff.protected_ids or user == self.bot_user

    def require_actor(self, actor: str) -> None:
        """A moderator or admin, or the bot's own policy (``SYSTEM_ACTOR``)."""
        if actor != SYSTEM_ACTOR and actor not in self.staff.moderation_ids:
            raise NotPermitted(cw.MODERATORS_ONLY)

    def check_target(self, actor: str, user: str) -> None:
        self.require_actor(actor)
        if self.protects(user):
            raise NotPermitted(
                f"{user} is Hearth staff: the bot never sanctions staff. Talk to them, or to an admin."
            )
        if not user.startswith("@") or ":" not in user:
            raise cw.CaseworkError(f"{user!r} is not a Matrix user ID (@name:server).")

    async def impose(
        self,
        actor: str,
        user: str,
        kind: SanctionKind,
        *,
        scope: str,
        reason: str,
        duration: timedelta | None | object = DEFAULT,
        case_id: str | None = None,
        notify: bool = True,
    ) -> Imposed:
        """Warn, mute or ban ``user`` across ``scope``; the member is told privately (``notify``)."""
        self.check_target(actor, user)
        reason = reason.strip() or "the community guidelines"
        now = self.clock.now()
        # A ban's rooms are recorded before any is banned: after a crash mid-way, lifting it still
        # unbans every room it may have reached.
        rooms = await self.rooms_of(scope) if kind is SanctionKind.BAN else []
        async with self._lock:

            def write(s: Session) -> tuple[Sanction, timedelta | None, int]:
                earlier = cw.earlier_sanctions(s, user, kind)
                if duration is DEFAULT:
                    chosen = (
                        None if kind is SanctionKind.WARN else self.defaults.duration_for(kind.value, earlier)
                    )
                else:
                    chosen = duration if isinstance(duration, timedelta) else None
                if kind is SanctionKind.MUTE and chosen is None:
                    raise cw.CaseworkError("A mute needs an end (10m, 2h, 7d); use a ban for longer.")
                row = cw.add_sanction(
                    s,
                    user=user,
                    kind=kind,
                    scope=scope,
                    reason=reason,
                    by=actor,
                    now=now,
                    duration=chosen,
                    case_id=case_id,
                )
                row.rooms = rooms
                s.add(row)
                where = "every space" if scope == ALL_SPACES else scope
                length = "warning" if kind is SanctionKind.WARN else cw.describe_duration(chosen)
                cw.audit(
                    s,
                    actor=actor,
                    action=kind.value,
                    now=now,
                    subject=user,
                    case_id=case_id,
                    sanction_id=row.id,
                    detail=f"{where}, {length}: {reason}",
                )
                return row, chosen, earlier

            row, chosen, earlier = await self.db(write)
            failed: list[str] = []
            if rooms:
                failed = await self._each(rooms, lambda r: self.gateway.ban(r, user, reason))
            await self.refresh()
        log.info(
            "%s: %s %s in %s by %s (%s)",
            row.id,
            kind.value,
            user,
            scope,
            actor,
            render.sanction_words(row, self.tz),
        )
        if notify:
            space = await self.space_name(scope)
            await self._tell(user, render.member_notice(row, space, self.tz, cw.describe_duration(chosen)))
        return Imposed(row, chosen, earlier, tuple(failed))

    async def lift(self, actor: str, user: str, kind: SanctionKind, *, why: str = "lifted") -> list[Sanction]:
        """End every ``kind`` sanction of ``user`` in force (a ban is undone in the rooms it was applied)."""
        self.require_actor(actor)
        now = self.clock.now()

        def end(s: Session) -> list[Sanction]:
            rows = cw.active_sanctions(s, now, user=user, kind=kind)
            for r in rows:
                cw.audit(
                    s,
                    actor=actor,
                    action=f"un{kind.value}",
                    now=now,
                    subject=user,
                    sanction_id=r.id,
                    detail=why,
                )
            return [cw.end_sanction(s, r.id, by=actor, reason=why, now=now) for r in rows]

        async with self._lock:
            ended = await self.db(end)
            await self._undo(ended)
            await self.refresh()
        for row in ended:
            await self._tell(user, render.member_text(await self._ended_words(row)))
        return ended

    async def end(self, sanction: Sanction) -> None:
        """Undo what a sanction did on Matrix once it has ended (appeal lifted, expiry)."""
        async with self._lock:
            await self._undo([sanction])
            await self.refresh()
        await self._tell(sanction.user_id, render.member_text(await self._ended_words(sanction)))

    async def expire_due(self) -> int:
        """Scheduler job: end sanctions whose time is up (bans lifted, mutes forgotten); returns how many."""
        now = self.clock.now()

        def due(s: Session) -> list[Sanction]:
            rows = cw.due_to_expire(s, now)
            for r in rows:
                cw.audit(s, actor=SYSTEM_ACTOR, action="expire", now=now, subject=r.user_id, sanction_id=r.id)
            return [cw.end_sanction(s, r.id, by=SYSTEM_ACTOR, reason="expired", now=now) for r in rows]

        async with self._lock:
            ended = await self.db(due)
            await self._undo(ended)
            await self.refresh()  # also drops mutes that lapsed without a sweep
        for row in ended:
            if row.kind != SanctionKind.WARN.value:
                await self._tell(row.user_id, render.member_text(await self._ended_words(row)))
        if ended:
            log.info("sanctions: %d ended on expiry", len(ended))
        return len(ended)

    async def _undo(self, rows: list[Sanction]) -> None:
        for row in rows:
            if row.kind == SanctionKind.BAN.value and row.rooms:
                user = row.user_id
                failed = await self._each(list(row.rooms), lambda r, u=user: self.gateway.unban(r, u))  # type: ignore[misc]
                if failed:
                    log.error("%s: could not unban %s in %d room(s): %s", row.id, user, len(failed), failed)

    async def _ended_words(self, row: Sanction) -> str:
        space = await self.space_name(row.scope)
        if row.kind == SanctionKind.MUTE.value:
            return f"Your posting in {space} is open again. Welcome back; we're glad you're here."
        return (
            f"You're welcome back in {space}: the ban has ended. You can join the rooms again from the space."
        )

    async def _each(self, rooms: list[str], call: Callable[[str], Awaitable[None]]) -> list[str]:
        """``call`` for every room, logging and returning those where it failed."""
        failed: list[str] = []
        for room in rooms:
            try:
                await call(room)
            except GatewayError as e:
                log.warning("sanction action in %s failed: %s", room, e)
                failed.append(room)
        return failed

    async def _tell(self, user: str, content: dict[str, Any]) -> None:
        try:
            await self.notify_member(user, content)
        except (GatewayError, TimeoutError, OSError) as e:
            log.warning("could not tell %s privately about a sanction: %s", user, e)
