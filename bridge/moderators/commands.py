"""Moderators' commands and card reactions in ``#hearth-moderators``, and members' ``!report`` as a
reply in a group room. Replies are ``m.notice`` in reply to the command, mentioning the sender.

A command that replies to a review card acts on that card's case: the member defaults to the card's
sender, a mute or ban covers the card's space, ``!redact`` takes the card's message, and the case is
marked actioned. Reactions on a card (✅ dismiss, 🗑️ redact, 🔇 mute, 🚫 ban) ask first; the same
moderator confirms with 👍 on the bot's question within ten minutes (Draupnir's pattern).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sqlmodel import Session, select

from bridge.escalation.commands import strip_reply_fallback
from bridge.gateway import GatewayError, TimelineEvent
from bridge.moderators import render
from bridge.moderators.sanctions import DEFAULT
from bridge.staff_room import reply_notice
from moderation import casework as cw
from moderation.casework import ALL_SPACES, CaseStatus, ModCase, SanctionKind
from moderation.models import ModerationDecision

if TYPE_CHECKING:
    from bridge.moderators.desk import ModerationDesk

log = logging.getLogger(__name__)

_PILL = re.compile(r'<a\s+href="https://matrix\.to/#/(@[^"?]+)[^"]*"\s*>.*?</a>', re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_REPLY = re.compile(r"<mx-reply>.*?</mx-reply>", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"https://matrix\.to/#/([!#][^/?\s]+)/(\$[^?\s]+)")
CONFIRM_SECONDS = 600
COMMANDS = frozenset(
    {
        "!mod",
        "!queue",
        "!case",
        "!dismiss",
        "!warn",
        "!mute",
        "!unmute",
        "!ban",
        "!unban",
        "!redact",
        "!note",
        "!history",
        "!appeal",
    }
)


def command_text(content: dict[str, Any]) -> str:
    """The command as typed: pills become Matrix IDs (clients put display names in ``body``)."""
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        text = _PILL.sub(lambda m: unquote(m.group(1)), _REPLY.sub("", formatted))
        return html.unescape(_TAG.sub("", text.replace("<br>", "\n"))).strip()
    return strip_reply_fallback(str(content.get("body", ""))).strip()


def _norm(key: str) -> str:
    return unicodedata.normalize("NFC", key).replace("\ufe0f", "")


@dataclass
class Pending:
    actor: str
    action: str  # dismiss | redact | mute | ban
    case_id: str
    expires: datetime


class Refused(Exception):
    """A command that cannot be carried out; the message is the reply."""


class ModCommands:
    def __init__(self, desk: ModerationDesk):
        self.desk = desk
        self.gateway = desk.gateway
        self.pending: dict[str, Pending] = {}

    # --- dispatch -----------------------------------------------------------------------------

    async def handle_event(self, ev: TimelineEvent) -> None:
        if ev.sender == self.gateway.user_id or ev.type not in ("m.reaction", "m.room.message"):
            return
        content = ev.event.get("content") or {}
        if self.desk.room.room_id is None and (
            ev.type == "m.reaction" or str(content.get("body", "")).startswith("!")
        ):
            with contextlib.suppress(GatewayError, TimeoutError, OSError):
                await asyncio.wait_for(self.desk.room.ensure(), 10)  # events of the first sync after start
        in_mod_room = self.desk.room.room_id is not None and ev.room_id == self.desk.room.room_id
        if ev.type == "m.reaction":
            if in_mod_room:
                await self._on_reaction(ev, content)
            return
        text = command_text(content)
        if not text.startswith("!"):
            return
        cmd, _, rest = text.partition(" ")
        cmd = cmd.lower()
        if cmd == "!report" and not in_mod_room:
            await self._member_report(ev, content, rest.strip())
            return
        if not in_mod_room or cmd not in COMMANDS:
            return
        if ev.sender not in self.desk.staff.moderation_ids:
            await self._reply(
                ev, "Only moderators (and admins) listed in config/staff.toml can use these commands."
            )
            return
        card = await self._card_case(content)
        try:
            answer = await self._run(ev, cmd, rest.strip(), card)
        except (Refused, cw.CaseworkError) as e:
            answer = str(e)
        except ValueError as e:  # a duration or argument that does not parse
            answer = f"{e}. {render.MOD_HELP}"
        await self._reply(ev, answer)

    async def _run(self, ev: TimelineEvent, cmd: str, rest: str, card: ModCase | None) -> str:
        actor = ev.sender
        if cmd == "!mod":
            return render.MOD_HELP
        if cmd == "!queue":
            cases = await self.desk.db(lambda s: cw.open_cases(s, limit=15))
            if not cases:
                return "The review queue is empty."
            return "Open cases, most urgent first:\n" + "\n".join(
                f"· {c.id} {c.kind} {c.subject}: {c.reason} ({c.reports} report(s))" for c in cases
            )
        if cmd == "!case":
            case = await self._case_arg(rest, card)
            await self.desk.show_case(case.id)
            return f"Case {case.id}: {case.kind}, {case.status}, about {case.subject}. Its card is above (edited)."
        if cmd == "!dismiss":
            case_id, _, note = self._split_case(rest, card)
            case = await self.desk.dismiss(actor, case_id, note)
            return f"Case {case.id} dismissed."
        if cmd == "!appeal":
            appeal_id, _, tail = rest.partition(" ")
            verdict, _, note = tail.strip().partition(" ")
            if not appeal_id or verdict.lower() not in ("uphold", "lift"):
                raise Refused("Use !appeal <id> uphold|lift [note].")
            return await self.desk.decide_appeal(actor, appeal_id, lift=verdict.lower() == "lift", note=note)
        if cmd == "!redact":
            return await self._redact(actor, rest, card)
        user, rest = self._user_arg(rest, card)
        if cmd == "!note":
            added = await self.desk.note(actor, user, rest)
            labels = f" (labels: {', '.join(added.labels)})" if added.labels else ""
            return f"Noted on {user}'s file{labels}."
        if cmd == "!history":
            f = await self.desk.member_file(user)
            return render.member_file_text(f, self.desk.staff.display_names, self.desk.tz)
        if cmd in ("!unmute", "!unban"):
            kind = SanctionKind.MUTE if cmd == "!unmute" else SanctionKind.BAN
            ended = await self.desk.lift(actor, user, kind)
            if not ended:
                return f"{user} has no {kind.value} in force."
            return f"Lifted: {', '.join(render.sanction_words(s, self.desk.tz) for s in ended)}."
        kind = {"!warn": SanctionKind.WARN, "!mute": SanctionKind.MUTE, "!ban": SanctionKind.BAN}[cmd]
        return await self._sanction(actor, user, kind, rest, card)

    # --- sanctions ----------------------------------------------------------------------------

    async def _sanction(
        self, actor: str, user: str, kind: SanctionKind, rest: str, card: ModCase | None
    ) -> str:
        words = rest.split()
        scope: str | None = ALL_SPACES if "--all" in words else None
        if "--space" in words:
            i = words.index("--space")
            if i + 1 >= len(words):
                raise Refused("--space needs a space's name, e.g. --space anxiety-panic.")
            scope = words[i + 1]
            del words[i : i + 2]
        words = [w for w in words if w != "--all"]
        duration: object = DEFAULT
        if kind is not SanctionKind.WARN and words and cw.looks_like_duration(words[0]):
            duration = cw.parse_duration(words.pop(0))
        imposed = await self.desk.sanction(
            actor,
            user,
            kind,
            reason=" ".join(words),
            duration=duration,
            scope=scope,
            case_id=card.id if card is not None else None,
        )
        done = render.sanction_words(imposed.sanction, self.desk.tz)
        default = (
            f" (default for their {_ordinal(imposed.earlier + 1)} {kind.value})"
            if duration is DEFAULT and kind is not SanctionKind.WARN
            else ""
        )
        failed = (
            f" Could not apply in {len(imposed.failed_rooms)} room(s): see the log."
            if imposed.failed_rooms
            else ""
        )
        return f"Done: {done}{default}. {user} was told privately, with how to appeal.{failed}"

    async def _redact(self, actor: str, rest: str, card: ModCase | None) -> str:
        target, _, reason = rest.partition(" ")
        room_id: str | None = None
        event_id: str | None = None
        m = _LINK.search(target)
        if m:
            room_id, event_id = unquote(m.group(1)), unquote(m.group(2))
        elif target.startswith("$"):
            event_id = target
        elif card is not None:
            await self.desk.redact_case(actor, card.id, rest)
            return f"Redacted the message of case {card.id}."
        if event_id is None:
            raise Refused("Use !redact <event link or $event id> [reason], or reply to a card.")
        if room_id is None or room_id.startswith("#"):
            room_id = await self.desk.db(lambda s: _room_of(s, event_id))
        if not room_id:
            raise Refused(f"I don't know which room {event_id} is in: use its link (Share → Copy link).")
        case_id = card.id if card is not None and card.event_id == event_id else None
        await self.desk.redact(actor, room_id, event_id, reason, case_id)
        return f"Redacted {event_id}."

    # --- reactions on cards -------------------------------------------------------------------

    async def _on_reaction(self, ev: TimelineEvent, content: dict[str, Any]) -> None:
        rel = content.get("m.relates_to") or {}
        key, target = rel.get("key"), rel.get("event_id")
        if rel.get("rel_type") != "m.annotation" or not isinstance(key, str) or not isinstance(target, str):
            return
        if ev.sender not in self.desk.staff.moderation_ids:
            return
        now = self.desk.clock.now()
        self.pending = {k: p for k, p in self.pending.items() if p.expires > now}
        if _norm(key) == _norm(render.CONFIRM_REACTION) and target in self.pending:
            pending = self.pending[target]
            if pending.actor != ev.sender:
                return  # only the moderator who asked confirms
            del self.pending[target]
            await self._confirmed(ev, pending)
            return
        action = {_norm(k): v for k, v in render.CARD_REACTIONS.items()}.get(_norm(key))
        if action is None:
            return
        case = await self.desk.db(lambda s: cw.case_by_card(s, target))
        if case is None or case.status != CaseStatus.OPEN.value:
            return
        question = await self._question(case, action)
        asked = await self.desk.post(
            {
                "msgtype": "m.notice",
                "body": f"{question} React {render.CONFIRM_REACTION} to this within 10 minutes to confirm.",
                "m.mentions": {"user_ids": [ev.sender]},
                "m.relates_to": {"m.in_reply_to": {"event_id": target}},
            },
            txn_id=f"hearth.mod_confirm.{ev.event_id}",
        )
        if asked is not None:
            self.pending[asked] = Pending(
                ev.sender, action, case.id, now + timedelta(seconds=CONFIRM_SECONDS)
            )

    async def _question(self, case: ModCase, action: str) -> str:
        if action == "dismiss":
            return f"Dismiss case {case.id} (nothing to do)?"
        if action == "redact":
            return f"Redact the message of case {case.id}?"
        kind = SanctionKind.MUTE if action == "mute" else SanctionKind.BAN
        earlier = await self.desk.db(lambda s: cw.earlier_sanctions(s, case.subject, kind))
        duration = self.desk.sanctions.defaults.duration_for(kind.value, earlier)
        where = case.space or "their spaces"
        return (
            f"{kind.value.capitalize()} {case.subject} in {where} for {cw.describe_duration(duration)} "
            f"(default for their {_ordinal(earlier + 1)} {kind.value}), reason: {case.reason}?"
        )

    async def _confirmed(self, ev: TimelineEvent, p: Pending) -> None:
        card = await self.desk.db(lambda s: cw.get_case(s, p.case_id))
        try:
            if p.action == "dismiss":
                answer = await self._run(ev, "!dismiss", card.id, None)
            elif p.action == "redact":
                answer = await self._redact(ev.sender, "", card)
            else:
                kind = SanctionKind.MUTE if p.action == "mute" else SanctionKind.BAN
                answer = await self._sanction(ev.sender, card.subject, kind, card.reason, card)
        except (Refused, cw.CaseworkError) as e:
            answer = str(e)
        await self._reply(ev, answer)

    # --- members' !report ---------------------------------------------------------------------

    async def _member_report(self, ev: TimelineEvent, content: dict[str, Any], reason: str) -> None:
        target = ((content.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id")
        if not isinstance(target, str):
            return
        if not await self.desk.report_by_reply(ev, target, reason):
            return
        try:  # the report is private: nobody else in the room needs to read it
            await self.gateway.redact(ev.room_id, ev.event_id, reason="report passed to the moderators")
        except GatewayError as e:
            log.warning("could not tidy away !report %s: %s", ev.event_id, e)
        await self.desk.tell_member(
            ev.sender,
            render.member_text(
                "Thank you for your report: it has reached the moderators, privately. "
                "You don't need to do anything else. If someone is in danger, say so here too."
            ),
        )

    # --- helpers ------------------------------------------------------------------------------

    async def _card_case(self, content: dict[str, Any]) -> ModCase | None:
        target = ((content.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id")
        if not isinstance(target, str):
            return None
        return await self.desk.db(lambda s: cw.case_by_card(s, target))

    def _split_case(self, rest: str, card: ModCase | None) -> tuple[str, str, str]:
        first, _, tail = rest.partition(" ")
        if card is not None and not _looks_like_case(first):
            return card.id, "", rest
        if not first:
            raise Refused("Which case? Give its id (M-...) or reply to its card.")
        return first, "", tail.strip()

    async def _case_arg(self, rest: str, card: ModCase | None) -> ModCase:
        case_id, _, _ = self._split_case(rest, card)
        return await self.desk.db(lambda s: cw.get_case(s, case_id))

    def _user_arg(self, rest: str, card: ModCase | None) -> tuple[str, str]:
        first, _, tail = rest.partition(" ")
        if first.startswith("@"):
            user = first if ":" in first else f"{first}:{self.desk.server_name}"
            return user, tail.strip()
        if card is not None:
            return card.subject, rest
        raise Refused("Which member? Write their Matrix ID (@name:server) or reply to a card.")

    async def _reply(self, ev: TimelineEvent, text: str) -> None:
        await reply_notice(self.gateway, ev, text)


def _room_of(s: Session, event_id: str) -> str | None:
    """The room of an event Hearth screened or has a case about."""
    found = s.get(ModerationDecision, event_id)
    if found is not None:
        return found.room_id
    case = s.exec(select(ModCase).where(ModCase.event_id == event_id)).first()
    return case.room_id if case is not None else None


def _looks_like_case(token: str) -> bool:
    t = token.upper()
    return t.startswith("M-") or (len(t) == 6 and t.isalnum())


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
