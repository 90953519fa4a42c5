"""Staff-room events: acknowledgement reactions on alerts and re-pages, and the ``!take``, ``!ack``,
``!resolve``, ``!note`` and ``!esc`` commands. Every action goes through the desk, as the staff API's
do, so the same permissions and audit apply; replies are ``m.notice`` mentioning the sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.escalation import render
from bridge.escalation.config import DeskConfig
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.staff_room import Names, StaffRoom, reply_notice
from moderation import escalation as dom
from moderation.escalation import (
    ACTIVE_STATUSES,
    Escalation,
    EscalationError,
    IllegalTransition,
    NotStaff,
    Outcome,
)

if TYPE_CHECKING:
    from bridge.escalation.desk import EscalationDesk

log = logging.getLogger(__name__)

_ESC_ID = re.compile(r"^(?:[Ee]-)?[0-9A-Za-z]{6}$")
COMMAND_HELP = (
    "Commands: !take <id> (join the person in their care room) · !ack <id> [note] · "
    "!resolve <id> <outcome> [note] · !note <id> <text> · !esc list. "
    "Outcomes: " + ", ".join(o.value for o in Outcome) + "."
)


class StaffCommands:
    def __init__(
        self,
        cfg: DeskConfig,
        desk: EscalationDesk,
        db: DbLane,
        gateway: NioGateway,
        clock: Clock,
        staff_room: StaffRoom,
        names: Names,
    ):
        self.cfg = cfg
        self.desk = desk
        self.db = db
        self.gateway = gateway
        self.clock = clock
        self.staff_room = staff_room
        self.names = names

    async def handle_event(self, ev: TimelineEvent) -> None:
        """Bot handler: reactions on alerts and ``!`` commands in the staff room."""
        if ev.sender == self.gateway.user_id or ev.type not in ("m.reaction", "m.room.message"):
            return
        content = ev.event.get("content") or {}
        if self.staff_room.room_id is None and (
            ev.type == "m.reaction" or str(content.get("body", "")).startswith("!")
        ):
            with contextlib.suppress(GatewayError, TimeoutError, OSError):
                await asyncio.wait_for(self.staff_room.ensure(), 10)  # events of the first sync after start
        if self.staff_room.room_id is None or ev.room_id != self.staff_room.room_id:
            return
        if ev.type == "m.reaction":
            await self._on_reaction(ev, content)
            return
        body = content.get("body")
        if not isinstance(body, str):
            return
        text = strip_reply_fallback(body).strip()
        if text.startswith("!"):
            await self._on_command(ev, text, content)

    async def _reply(self, ev: TimelineEvent, text: str) -> None:
        await reply_notice(self.gateway, ev, text)

    async def _on_reaction(self, ev: TimelineEvent, content: dict[str, Any]) -> None:
        rel = content.get("m.relates_to") or {}
        key, target = rel.get("key"), rel.get("event_id")
        if rel.get("rel_type") != "m.annotation" or not isinstance(key, str) or not isinstance(target, str):
            return
        if not dom.is_ack_reaction(key, self.cfg.ack_reactions):
            return
        esc = await self.db(lambda s: dom.find_by_notice_event(s, target))
        if esc is None:
            return
        try:
            await self.desk.acknowledge(esc.id, ev.sender, note=f"reaction {key} ({ev.event_id})")
        except NotStaff as e:
            log.info(
                "reaction %s on escalation %s by %s refused: not a clinician", ev.event_id, esc.id, ev.sender
            )
            await self._reply(ev, f"{e} Your reaction did not acknowledge {esc.id}.")
        except IllegalTransition as e:
            await self._reply(ev, e.reason)

    async def _on_command(self, ev: TimelineEvent, text: str, content: dict[str, Any]) -> None:
        cmd, _, rest = text.partition(" ")
        cmd, rest = cmd.lower(), rest.strip()
        if cmd not in ("!ack", "!resolve", "!note", "!esc", "!take"):
            return  # not ours
        try:
            self.desk.require_staff(ev.sender)
            if cmd == "!esc":
                await self._reply(ev, await self._esc_command(rest))
                return
            esc_id, _, rest = rest.partition(" ")
            rest = rest.strip()
            if not _ESC_ID.match(esc_id):
                # `!ack` sent as a reply to an alert may omit the ID.
                replied = ((content.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id")
                found = await self.db(lambda s: dom.find_by_notice_event(s, replied)) if replied else None
                if found is None:
                    await self._reply(ev, f"Which escalation? {COMMAND_HELP}")
                    return
                rest = f"{esc_id} {rest}".strip()
                esc_id = found.id
            if cmd == "!take":
                esc = await self.desk.take(esc_id, ev.sender, anyway=rest.lower() == "anyway")
                await self._reply(
                    ev,
                    f"{esc.id}: you're being invited to {self._member_label(esc)}'s care room; "
                    "they will be told gently that you have joined.",
                )
            elif cmd == "!ack":
                esc = await self.desk.acknowledge(esc_id, ev.sender, note=rest or None)
                await self._reply(ev, f"{esc.id} acknowledged by {self._who(ev.sender)}.")
            elif cmd == "!resolve":
                outcome, _, note = rest.partition(" ")
                if not outcome:
                    await self._reply(
                        ev, f"Say how it ended: !resolve {esc_id} <outcome> [note]. {COMMAND_HELP}"
                    )
                    return
                esc = await self.desk.resolve(esc_id, ev.sender, outcome, note.strip() or None)
                label = dom.OUTCOME_LABELS.get(Outcome(esc.outcome or Outcome.OTHER), esc.outcome)
                await self._reply(ev, f"{esc.id} resolved by {self._who(ev.sender)}: {label}.")
            else:
                if not rest:
                    await self._reply(ev, f"A note needs text: !note {esc_id} <text>.")
                    return
                row = await self.desk.add_note(esc_id, ev.sender, rest)
                await self._reply(ev, f"Note added to {row.escalation_id}.")
        except IllegalTransition as e:
            await self._reply(ev, e.reason)
        except EscalationError as e:  # NotStaff, NotPermitted, EscalationNotFound
            await self._reply(ev, str(e))
        except ValueError as e:  # unknown outcome, empty note
            await self._reply(ev, str(e))

    async def _esc_command(self, rest: str) -> str:
        if rest.split()[:1] != ["list"]:
            return COMMAND_HELP
        active = await self.desk.list_escalations(status=[s.value for s in ACTIVE_STATUSES], limit=20)
        if not active:
            return "No active escalations."
        now = self.clock.now()
        lines = [f"{len(active)} active escalation(s), newest first:"]
        for esc in active:
            age = int((now - esc.created_at).total_seconds() // 60)
            who = f" by {self._who(esc.acknowledged_by)}" if esc.acknowledged_by else ""
            where = self.names.rooms.get(esc.room_id) or esc.room_id
            member = render.person(
                esc.sender, {esc.sender: self.names.members.get((esc.room_id, esc.sender)) or ""}
            )
            lines.append(
                f"• {esc.id} {esc.severity}, {render.category_words(esc.category)}: {esc.status}{who}, "
                f"{age} min ago, {member} in {where}"
            )
        return "\n".join(lines)

    def _member_label(self, esc: Escalation) -> str:
        return self.names.members.get((esc.room_id, esc.sender)) or esc.sender

    def _who(self, user: str) -> str:
        return render.person(user, self.cfg.staff.display_names)


def strip_reply_fallback(body: str) -> str:
    """Drop a rich reply's quoted fallback (``> <@user> ...`` lines and the blank line after)."""
    lines = body.splitlines()
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).lstrip("\n")
