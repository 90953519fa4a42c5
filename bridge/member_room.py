"""What a member can do in their private room with the bot (the room their crisis resources and
kind explanations arrive in, and their care room when a clinician takes their case):

- reply: while they have an active crisis case, the reply is attached to it and, until a clinician
  takes it, pages the on-call clinician (``EscalationDesk.care_message``); the text stays in the room;
- ``!alone``: ask to be left alone, which the care team respects (``moderation.escalation.care``);
- ``!region`` to choose which country's crisis lines they get;
- ``!agree``: accept the guidelines of the spaces they were welcomed to (``bridge.welcome``);
- ``!mydata``: what Hearth keeps about them, as a JSON file; ``!forgetme`` (then ``!forgetme yes``):
  erase it from Hearth (``bridge.member_data``);
- ``!appeal <what they want the moderators to know>``: appeal their latest mute or ban
  (``bridge.moderators``), decided by a moderator other than the one who acted;
- ``!sessions``, ``!remind``, ``!level``, and for facilitators ``!start`` / ``!end``: group sessions
  (``bridge.sessions.commands``).

``!region`` shows the current choice and the countries Hearth has lines for; ``!region GB`` chooses
one (and replies with its lines at once); ``!region clear`` goes back to the space's or operator's
region. Commands elsewhere are ignored: a region is a private matter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from bridge import member_data
from bridge.clock import Clock
from bridge.db import run_db
from bridge.direct_rooms import DirectRooms
from bridge.escalation import render
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.models import MemberRegion
from bridge.regions import region_for, set_member_region
from config.resources import CrisisResources

log = logging.getLogger(__name__)


class CareDesk(Protocol):
    """What this module needs of ``bridge.escalation.desk.EscalationDesk``."""

    async def care_message(self, user: str, room: str, event_id: str) -> Any: ...
    async def leave_alone(self, user: str, room: str) -> Any: ...


class AgreeDesk(Protocol):
    """What this module needs of ``bridge.welcome.Welcome``."""

    async def agree(self, user: str) -> dict[str, Any]: ...


class SessionsDesk(Protocol):
    """What this module needs of ``bridge.sessions.commands.SessionCommands``."""

    async def member(self, user: str, cmd: str, arg: str) -> str: ...


SESSION_COMMANDS = frozenset({"!sessions", "!remind", "!level", "!start", "!end"})


class AppealDesk(Protocol):
    """What this module needs of ``bridge.moderators.desk.ModerationDesk``."""

    async def appeal(self, user: str, text: str) -> dict[str, Any]: ...


CLEAR_WORDS = frozenset({"clear", "reset", "none", "off", "default"})


class MemberRoom:
    """Handles members' commands in their private rooms with the bot."""

    def __init__(
        self,
        engine: Engine,
        gateway: NioGateway,
        clock: Clock,
        direct: DirectRooms,
        resources: Callable[[], CrisisResources],
        default_region: str | None,
        desk: CareDesk,
        appeals: AppealDesk | None = None,
        welcome: AgreeDesk | None = None,
        forgetters: Sequence[Callable[[str], None]] = (),
        sessions: SessionsDesk | None = None,
    ):
        self.engine = engine
        self.gateway = gateway
        self.clock = clock
        self.direct = direct
        self._resources = resources  # asked each time: a reloaded catalogue applies to the next reply
        self.default_region = default_region
        self.desk = desk
        self.appeals = appeals
        self.welcome = welcome
        self.forgetters = tuple(forgetters)  # in-memory caches to drop a forgotten member from
        self.sessions = sessions

    @property
    def resources(self) -> CrisisResources:
        """The helpline catalogue as last loaded well."""
        return self._resources()

    async def handle_event(self, ev: TimelineEvent) -> None:
        """Bot handler: the sender's messages in their private room with the bot."""
        if ev.type != "m.room.message" or ev.sender == self.gateway.user_id:
            return
        body = (ev.event.get("content") or {}).get("body")
        if not isinstance(body, str) or not await self.direct.is_private_room(ev.sender, ev.room_id):
            return
        cmd, _, arg = body.strip().partition(" ")
        if cmd.lower() == "!region":
            await self._reply(ev, await self._region(ev.sender, arg.strip()))
        elif cmd.lower() == "!alone":
            await self.desk.leave_alone(ev.sender, ev.room_id)  # noted on their case, if they have one
            await self._reply(ev, render.left_alone_content())
        elif cmd.lower() == "!agree" and self.welcome is not None:
            await self._reply(ev, await self.welcome.agree(ev.sender))
        elif cmd.lower() == "!mydata":
            await self._reply(ev, await self._my_data(ev.sender))
        elif cmd.lower() == "!forgetme":
            await self._reply(ev, await self._forget(ev.sender, arg.strip().lower()))
        elif cmd.lower() == "!appeal" and self.appeals is not None:
            await self._reply(ev, await self.appeals.appeal(ev.sender, arg.strip()))
        elif cmd.lower() in SESSION_COMMANDS and self.sessions is not None:
            await self._reply(ev, _text(await self.sessions.member(ev.sender, cmd.lower(), arg.strip())))
        elif not cmd.startswith("!"):
            await self.desk.care_message(ev.sender, ev.room_id, ev.event_id)

    async def _my_data(self, user: str) -> dict[str, Any]:
        """``!mydata``: what Hearth keeps about the member, as a JSON file in this room."""
        now = self.clock.now()
        data = await run_db(self.engine, lambda s: member_data.export(s, user, now=now))
        blob = member_data.export_file(data)
        try:
            url = await self.gateway.upload(blob, "application/json", "hearth-my-data.json")
        except GatewayError as e:
            log.warning("could not upload a member's data file: %s", e)
            return _text("Sorry, I couldn't prepare your file just now. Please try again in a minute.")
        log.info("a member downloaded their data (%d bytes)", len(blob))
        return {
            "msgtype": "m.file",
            "body": "hearth-my-data.json",
            "filename": "hearth-my-data.json",
            "url": url,
            "info": {"mimetype": "application/json", "size": len(blob)},
            "m.mentions": {},
        }

    async def _forget(self, user: str, arg: str) -> dict[str, Any]:
        """``!forgetme`` explains and asks; ``!forgetme yes`` erases."""
        if arg != "yes":
            return _text(member_data.forget_question())
        now = self.clock.now()
        result = await run_db(self.engine, lambda s: member_data.erase(s, user, now=now))
        for forget in self.forgetters:
            forget(user)
        log.info("a member asked to be forgotten: %d records", sum(result.erased.values()))
        return _text(member_data.forget_answer(result))

    async def _region(self, user: str, arg: str) -> dict[str, Any]:
        if not arg:
            chosen = await run_db(self.engine, lambda s: s.get(MemberRegion, user))
            return _text(self._status(chosen.region if chosen else None))
        if arg.lower() in CLEAR_WORDS:
            now = self.clock.now()

            def clear(s: Session) -> str | None:
                set_member_region(s, user, None, now)
                s.flush()
                return region_for(s, user=user, space=None, default=self.default_region)

            return render.region_lines_content(await run_db(self.engine, clear), self.resources)
        code = self.resources.known(arg)
        if code is None:
            return _text(
                f"Sorry, I don't have crisis lines for {arg[:20]!r} yet. {self._choices()} "
                "Find A Helpline (https://findahelpline.com) lists free services in many more countries."
            )
        now = self.clock.now()

        await run_db(self.engine, lambda s: set_member_region(s, user, code, now))
        log.info("a member chose the crisis lines of %s", code)
        return render.region_lines_content(code, self.resources)

    def _status(self, chosen: str | None) -> str:
        chosen_set = self.resources.regions.get(chosen) if chosen else None
        if chosen_set is not None:
            now = f"You chose the crisis lines for {chosen_set.name} ({chosen})."
        elif chosen:  # a region the catalogue no longer has (it was reloaded without it)
            now = f"You chose {chosen}, which has no crisis lines of its own now, so I show the space's."
        else:
            now = "You haven't chosen a country, so I show the lines for the space you write in."
        return f"{now} {self._choices()} Send !region clear to undo a choice."

    def _choices(self) -> str:
        codes = ", ".join(f"{c} ({self.resources.regions[c].name})" for c in self.resources.codes)
        return f"Send !region and one of: {codes}."

    async def _reply(self, ev: TimelineEvent, content: dict[str, Any]) -> None:
        content = {**content, "m.relates_to": {"m.in_reply_to": {"event_id": ev.event_id}}}
        try:
            await self.gateway.send(ev.room_id, content, txn_id=f"hearth.member.{ev.event_id}")
        except GatewayError as e:
            log.warning("could not answer a member in their private room: %s", e)


def _text(body: str) -> dict[str, Any]:
    # m.text: it answers the member and may be read on a phone (notices are often hidden or muted)
    return {"msgtype": "m.text", "body": body, "m.mentions": {}}
