"""After-delivery dispositions: what the bot does once a screened message is in the room.

``block`` here means the gate let the message through (budget passed, fail-open, a federated event),
so the bot redacts it and tells the sender kindly why; so is a message from a muted member that the
gate did not see. ``escalate`` goes to the escalation desk, which also sends the person crisis
resources once per episode; ``send_resources`` alone sends them directly. ``mute`` is a sanction
across the room's space, enforced at the gate until it expires (``bridge.moderators.sanctions``).
``flag`` keeps the text and opens a review case for the moderators, except on a message that
escalates: that one belongs to the clinicians, and no volunteer reviews or sanctions a person in crisis.

Mutes made before sanctions existed lowered power levels; :meth:`Actions.unmute_due` still restores
those (the ``mute`` table) when they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bridge.clock import Clock
from bridge.gateway import GatewayError, NioGateway
from bridge.models import Mute
from bridge.moderators.render import label_words
from config.ids import RoomID
from moderation import store
from moderation.casework import SYSTEM_ACTOR, ActiveMute, SanctionKind
from moderation.escalation.port import EscalationPort
from moderation.types import Message, Verdict

log = logging.getLogger(__name__)

DEFAULT_BLOCK_TEXT = (
    "A message you sent was removed because it breaks this space's guidelines. "
    "You're still welcome here; a moderator can help if you think this was a mistake."
)
DEFAULT_WARN_TEXT = (
    "A gentle reminder: please keep messages kind. This is a space where people come for support."
)
MUTE_LEVEL = -1
REFUSAL_NOTICE_SECONDS = 300  # a refused member hears why privately at most this often


class ModeratorsPort(Protocol):
    """What actions need of ``bridge.moderators``: open a review case, and the sanctions."""

    async def flag(self, message: Message, reason: str, signals: list[str], *, held: bool = False) -> Any: ...


class SanctionsPort(Protocol):
    def muted(self, user: str, space: str | None) -> ActiveMute | None: ...

    def protects(self, user: str) -> bool: ...

    async def impose(
        self,
        actor: str,
        user: str,
        kind: SanctionKind,
        *,
        scope: str,
        reason: str,
        duration: timedelta | None | object = ...,
        case_id: str | None = None,
        notify: bool = True,
    ) -> Any: ...

    async def muted_notice(self, mute: ActiveMute, space: str | None) -> str: ...


class Actions:
    """Carries out a verdict's after-delivery dispositions for one delivered message."""

    def __init__(
        self,
        engine: Engine,
        gateway: NioGateway,
        clock: Clock,
        *,
        dm_room: Callable[[str], Awaitable[RoomID]],
        escalations: EscalationPort,
        resources_for: Callable[[str, str | None], Awaitable[dict[str, Any]]],
        flag_retention: timedelta,
        moderators: ModeratorsPort | None = None,
        sanctions: SanctionsPort | None = None,
    ):
        self.engine = engine
        self.gateway = gateway
        self.clock = clock
        self.dm_room = dm_room
        self.escalations = escalations
        self.resources_for = resources_for
        self.flag_retention = flag_retention
        self.moderators = moderators
        self.sanctions = sanctions
        self._mute_lock = asyncio.Lock()
        self._explained: dict[str, float] = {}  # member -> when they were last told why (monotonic)

    async def carry_out(self, message: Message, verdict: Verdict, *, delivered_unscreened: bool) -> None:
        kinds = {d.kind for d in verdict.dispositions}
        # Safety first: the person in crisis reaches a clinician before anything else happens.
        # (Usually already raised at the gate; this is the safety net, answered from memory when
        # this process raised it already, idempotent in the database after a restart.)
        await self.escalations.raise_for(message, verdict)
        if "send_resources" in kinds and "escalate" not in kinds:
            await self._dm(message.sender, await self.resources_for(message.sender, message.space))
        mute = (
            self.sanctions.muted(message.sender, message.space)
            if self.sanctions is not None and delivered_unscreened and "escalate" not in kinds
            else None
        )
        if "block" in kinds and delivered_unscreened:
            await self._redact(message, "removed by Hearth's moderation after delivery")
            block = verdict.of_kind("block")[0]
            await self._dm(message.sender, _notice(block.message or DEFAULT_BLOCK_TEXT))
        elif mute is not None and self.sanctions is not None:
            # The gate did not see it (it was down or past its budget): the mute still holds.
            await self._redact(message, "the sender's posting is paused by a moderator")
            await self._dm(message.sender, _notice(await self.sanctions.muted_notice(mute, message.space)))
        elif "redact" in kinds:
            await self._redact(message, "removed by Hearth's moderation")
        if "warn" in kinds:
            warn = verdict.of_kind("warn")[0]
            await self._dm(message.sender, _notice(warn.message or DEFAULT_WARN_TEXT))
        for d in verdict.of_kind("mute")[:1]:
            if (
                self.sanctions is not None
                and "escalate" not in kinds
                and not self.sanctions.protects(message.sender)
            ):
                await self.sanctions.impose(
                    SYSTEM_ACTOR,
                    message.sender,
                    SanctionKind.MUTE,
                    scope=message.space or "*",
                    reason=label_words(d.reason),
                    duration=timedelta(minutes=d.mute_minutes or 10),
                    notify=False,  # the policy's own kind text follows
                )
            if d.message:
                await self._dm(message.sender, _notice(d.message))
        flags = verdict.of_kind("flag")
        if flags:
            reason = "; ".join(d.reason for d in flags)
            await asyncio.to_thread(self._flag, message, reason)
            if self.moderators is not None and "escalate" not in kinds:
                await self.moderators.flag(message, reason, [d.reason for d in flags])

    async def explain_refusal(self, user: str, text: str) -> None:
        """A message refused at the gate: the member also hears why privately, because many clients
        show only "message not sent" (element-web #17490); at most every few minutes per member."""
        now = asyncio.get_running_loop().time()
        last = self._explained.get(user)
        if last is not None and now - last < REFUSAL_NOTICE_SECONDS:
            return
        self._explained[user] = now
        if len(self._explained) > 10_000:  # forget the oldest
            for key in sorted(self._explained, key=self._explained.__getitem__)[:5_000]:
                del self._explained[key]
        try:
            await self._dm(
                user,
                {
                    "msgtype": "m.text",
                    "body": f"A message you just sent wasn't delivered. {text}",
                    "m.mentions": {},
                },
            )
        except (GatewayError, TimeoutError, OSError) as e:
            log.warning("could not tell %s privately why their message was refused: %s", user, e)

    def _flag(self, message: Message, reason: str) -> None:
        with Session(self.engine) as s:
            store.flag(s, message, reason, now=self.clock.now(), retention=self.flag_retention)
            s.commit()

    async def withdraw_federated(self, message: Message) -> None:
        """A remote member's message the gate refused. Hearth's server soft-failed it (nobody there
        sees it), but the sender's own server had already accepted it and still shows it to its
        users; a redaction federates and takes its text away there too."""
        with contextlib.suppress(GatewayError):  # logged by _redact; the refusal on Hearth's server stands
            await self._redact(message, "refused by Hearth's moderation")

    async def _redact(self, message: Message, reason: str) -> None:
        try:
            await self.gateway.redact(message.room_id, message.event_id, reason=reason)
        except GatewayError as e:
            log.error("could not redact %s: %s", message.event_id, e)
            raise

    async def _dm(self, user: str, content: dict[str, Any]) -> None:
        room = await self.dm_room(user)
        await self.gateway.send(room, content)

    # --- mutes made before sanctions (power levels) ---

    async def unmute_due(self) -> int:
        """Restore every power-level mute (from before sanctions) whose time is up; returns how many."""
        now = self.clock.now()

        def due() -> list[Mute]:
            with Session(self.engine) as s:
                return list(s.exec(select(Mute).where(col(Mute.until) <= now)))

        restored = 0
        for m in await asyncio.to_thread(due):
            async with self._mute_lock:
                pl = await self.gateway.get_state_event(m.room_id, "m.room.power_levels") or {}
                users = dict(pl.get("users") or {})
                if users.get(m.user_id) == MUTE_LEVEL:
                    if m.previous_level is None:
                        users.pop(m.user_id, None)
                    else:
                        users[m.user_id] = m.previous_level
                    await self.gateway.put_state(m.room_id, "m.room.power_levels", {**pl, "users": users})

                def forget(row: Mute = m) -> None:
                    with Session(self.engine) as s:
                        found = s.get(Mute, (row.room_id, row.user_id))
                        if found is not None:
                            s.delete(found)
                            s.commit()

                await asyncio.to_thread(forget)
                restored += 1
        return restored


def _notice(text: str) -> dict[str, Any]:
    return {"msgtype": "m.notice", "body": text}
