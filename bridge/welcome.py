"""A welcome and the guidelines: a member's first join to a space brings one private welcome from the
bot with the space's guidelines (HTML and plain text), the crisis lines for their region and how to
find help. They accept with ``!agree`` in their private room with the bot, or a reaction on the
welcome; with ``join.hold_until_agreed`` the gate holds their messages in that space until then, with
a kind pointer to the welcome, except a message the crisis detector reads as risk, which is
delivered and escalated as always.

The agreement row is written at the gate's ``user_may_join_room`` (before the join happens, so a
first message can never outrun it); the welcome itself is sent when the bot sees the join. Members
who were already in the space before welcomes existed are recorded as agreed, never held.

Another server's member ("remote member") gets the same welcome and is held the same way. Synapse
asks ``user_may_join_room`` only for its own users, but it asks ``check_event_for_spam`` about every
event arriving over federation, their join included, before storing it: the row is written there
(``federated_join_check``), again before any message of theirs can follow. The welcome is sent when
the bot sees the join and has not removed them from a full room (``bridge.remote_joins``), and the
bot writes the row itself if the gate could not (the database was unavailable just then).
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Set
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.gate import Answer
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.models import MemberAgreement, RoomMember
from bridge.remote_joins import is_remote_join
from bridge.themes import shipped_themes
from config.ids import server_of
from spaces.models import ProvisionedRoom, ProvisionedSpace
from spaces.plan import guidelines_html, guidelines_markdown
from spaces.themes import Theme

log = logging.getLogger(__name__)

SPACES_TTL_SECONDS = 30.0

DmRoom = Callable[[str], Awaitable[str]]
Resources = Callable[[str, str | None], Awaitable[dict[str, Any]]]


def welcome_content(theme: Theme | None, space: str) -> dict[str, Any]:
    """The welcome: what the space is, its guidelines, how to agree, where help is (pure)."""
    name = theme.name if theme is not None else space.replace("-", " ")
    guidelines = guidelines_markdown(theme) if theme is not None else ""
    intro = (
        f"Welcome to {name}. This is a peer-support space: people who have been through similar things, "
        "supporting each other. It isn't therapy or a crisis service."
    )
    ask = (
        "Please read the guidelines below. When you're ready, reply !agree here (or react to this "
        "message), and you can post in the space."
    )
    help_line = (
        "If you are struggling right now, write here or in the space: Hearth's care team will reach out. "
        "The crisis lines for where you are follow (!region changes the country). To reach a moderator, "
        "reply to a message with !report."
    )
    body = "\n\n".join(p for p in (intro, ask, guidelines, help_line) if p)
    formatted = (
        f"<p>{html.escape(intro)}</p><p><b>{html.escape(ask)}</b></p>"
        + (guidelines_html(guidelines) if guidelines else "")
        + f"<p>{html.escape(help_line)}</p>"
    )
    return {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {},
        "org.hearth.welcome": {"space": space},
    }


AGREED_TEXT = "Thank you. You can post in the space now; we're glad you're here."


class Welcome:
    def __init__(
        self,
        engine: Engine,
        gateway: NioGateway,
        clock: Clock,
        *,
        staff: Set[str],
        dm_room: DmRoom,
        resources_for: Resources,
        hold: bool,
    ):
        self.hold = hold
        self.db = DbLane(engine, "welcome-db", workers=1)
        self.gateway = gateway
        self.clock = clock
        self.staff = staff  # kept, not copied: a staff file reload applies (a live view, see service)
        self.server_name = server_of(gateway.user_id)
        self.dm_room = dm_room
        self.resources_for = resources_for
        self._pending: set[tuple[str, str]] = set()  # (user, space) welcomed and not yet agreed
        self._space_of: dict[str, str] = {}
        self._loaded_at = -1e9
        self._locks: dict[str, asyncio.Lock] = {}

    def _exempt(self, user: str) -> bool:
        """Staff and the bot never wait for a space's guidelines."""
        return user == self.gateway.user_id or user in self.staff

    async def load(self) -> None:
        """Before the gate answers: who is still to agree (from the database)."""

        def read(s: Session) -> set[tuple[str, str]]:
            rows = s.exec(select(MemberAgreement).where(col(MemberAgreement.agreed_at).is_(None)))
            return {(r.user_id, r.space) for r in rows}

        self._pending = await self.db(read)

    def close(self) -> None:
        self.db.close()

    # --- the gate ---------------------------------------------------------------------------

    def pending(self, user: str, space: str | None) -> bool:
        """Whether the gate holds this member's messages in ``space`` (``join.hold_until_agreed``)."""
        return self.hold and space is not None and (user, space) in self._pending

    @staticmethod
    def pending_notice(space: str) -> str:
        return (
            "Welcome! Before your first message here, please read the guidelines I sent you privately "
            "and reply !agree there (or react to the welcome). Then you can post."
        )

    async def _space(self, room_id: str) -> str | None:
        loop = asyncio.get_running_loop()
        if room_id not in self._space_of or loop.time() - self._loaded_at > SPACES_TTL_SECONDS:

            def read(s: Session) -> dict[str, str]:
                out = {r.room_id: r.space_slug for r in s.exec(select(ProvisionedRoom))}
                out |= {sp.room_id: sp.theme_slug for sp in s.exec(select(ProvisionedSpace))}
                return out

            self._space_of = await self.db(read)
            self._loaded_at = loop.time()
        return self._space_of.get(room_id)

    async def join_check(self, payload: dict[str, Any]) -> Answer | None:
        """``user_may_join_room``: note a first join to a space (never refuses a join)."""
        user, room = str(payload.get("user", "")), str(payload.get("room", ""))
        if user and not self._exempt(user):
            await self._note_join(user, room)
        return None

    async def federated_join_check(self, payload: dict[str, Any]) -> Answer | None:
        """``check_event_for_spam``: a remote member's join arriving over federation is noted as a
        local member's is at ``user_may_join_room`` (never refuses anything)."""
        event = payload.get("event")
        if isinstance(event, dict) and is_remote_join(event, self.server_name):
            user = str(event["sender"])
            if not self._exempt(user):
                await self._note_join(user, str(event.get("room_id", "")))
        return None

    async def _note_join(self, user: str, room: str, *, seen_in: str | None = None) -> None:
        """Write the member's agreement row for the space of ``room`` unless there is one. ``seen_in``:
        a room whose join is already recorded by the bot (it is not a sign of an earlier membership)."""
        space = await self._space(room)
        if space is None or (user, space) in self._pending:
            return
        now = self.clock.now()

        def record(s: Session) -> bool:
            if s.get(MemberAgreement, (user, space)) is not None:
                return False
            rooms = [r for r, sp in self._space_of.items() if sp == space and r != seen_in]
            already = s.exec(
                select(RoomMember).where(RoomMember.user_id == user, col(RoomMember.room_id).in_(rooms))
            ).first()
            # In the space before welcomes existed: agreed (never held); otherwise still to agree.
            s.add(
                MemberAgreement(user_id=user, space=space, joined_at=now, agreed_at=now if already else None)
            )
            return already is None

        if await self.db(record):
            self._pending.add((user, space))

    # --- the bot ----------------------------------------------------------------------------

    async def handle_event(self, ev: TimelineEvent) -> None:
        """Joins (send the welcome) and reactions on a welcome (agree)."""
        if self._exempt(ev.sender):
            return
        content = ev.event.get("content") or {}
        if ev.type == "m.room.member" and content.get("membership") == "join":
            if server_of(ev.sender) != self.server_name:
                return  # ``bridge.remote_joins`` first sees whether the room had space for them
            await self._welcome_if_pending(ev.sender, ev.room_id)
        elif ev.type == "m.reaction":
            target = (content.get("m.relates_to") or {}).get("event_id")
            if isinstance(target, str):
                await self._agree_by_reaction(ev, target)

    async def remote_join(self, user: str, room: str) -> None:
        """A remote member's join the bot saw and let stand (``bridge.remote_joins``): noted if the
        gate could not note it, then welcomed as anyone."""
        if self._exempt(user):
            return
        await self._note_join(user, room, seen_in=room)
        await self._welcome_if_pending(user, room)

    async def _welcome_if_pending(self, user: str, room: str) -> None:
        space = await self._space(room)
        if space is not None and (user, space) in self._pending:
            await self._send_welcome(user, space)

    async def _send_welcome(self, user: str, space: str) -> None:
        async with self._locks.setdefault(user, asyncio.Lock()):
            row = await self.db(lambda s: s.get(MemberAgreement, (user, space)))
            if row is None or row.welcome_event_id is not None or row.agreed_at is not None:
                return
            try:
                room = await self.dm_room(user)
                event_id = await self.gateway.send(
                    room,
                    welcome_content(shipped_themes().get(space), space),
                    txn_id=f"hearth.welcome.{space}.{user}",
                )
                await self.gateway.send(room, await self.resources_for(user, space))
            except (GatewayError, TimeoutError, OSError) as e:
                log.warning("could not welcome %s to %s: %s", user, space, e)
                return

            def remember(s: Session) -> None:
                found = s.get(MemberAgreement, (user, space))
                if found is not None:
                    found.welcome_room_id, found.welcome_event_id = room, str(event_id)
                    s.add(found)

            await self.db(remember)

    def forget(self, user: str) -> None:
        """A member erased from Hearth (``!forgetme``) is nothing to the gate any more."""
        self._pending = {(u, sp) for u, sp in self._pending if u != user}

    async def agree(self, user: str) -> dict[str, Any]:
        """``!agree`` in the member's private room: every space they were welcomed to."""
        now = self.clock.now()

        def write(s: Session) -> list[str]:
            rows = s.exec(
                select(MemberAgreement).where(
                    MemberAgreement.user_id == user, col(MemberAgreement.agreed_at).is_(None)
                )
            ).all()
            for r in rows:
                r.agreed_at = now
                s.add(r)
            return [r.space for r in rows]

        spaces = await self.db(write)
        for space in spaces:
            self._pending.discard((user, space))
        text = AGREED_TEXT if spaces else "You're all set: there is nothing waiting for your agreement."
        return {"msgtype": "m.text", "body": text, "m.mentions": {}}

    async def _agree_by_reaction(self, ev: TimelineEvent, target: str) -> None:
        now = self.clock.now()

        def write(s: Session) -> str | None:
            row = s.exec(select(MemberAgreement).where(MemberAgreement.welcome_event_id == target)).first()
            if row is None or row.user_id != ev.sender or row.agreed_at is not None:
                return None
            row.agreed_at = now
            s.add(row)
            return row.space

        space = await self.db(write)
        if space is not None:
            self._pending.discard((ev.sender, space))
            try:
                await self.gateway.send(
                    ev.room_id, {"msgtype": "m.text", "body": AGREED_TEXT, "m.mentions": {}}
                )
            except GatewayError as e:
                log.warning("could not thank %s for agreeing: %s", ev.sender, e)
