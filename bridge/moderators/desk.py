"""The moderation desk: everything volunteer moderators work with, on Matrix.

- the moderators' room ``#hearth-moderators`` (moderators and admins; clinical alerts stay in the
  clinicians' ``#hearth-staff``), resolved or created like the staff room;
- review cards there for flagged messages (from ``bridge.actions``), members' reports (read from
  Synapse's admin API by :class:`~bridge.moderators.reports.ReportReader`, and ``!report`` as a reply
  in a group room) and appeals, each one message mentioning the moderator(s) on duty, edited as the
  case moves;
- sanctions across a space with expiry (:class:`~bridge.moderators.sanctions.Sanctions`);
- appeals from a member's private room (``!appeal``), decided by a different moderator, with
  reminders when they wait.

Scheduled jobs (report reads, sanction expiry, appeal reminders) read their deadlines from the
database, so a restart loses nothing.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Engine, Text, cast
from sqlmodel import Session, col, func, select

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.moderators import render
from bridge.moderators.commands import ModCommands
from bridge.moderators.reports import ReportReader
from bridge.moderators.sanctions import DEFAULT, Imposed, Sanctions
from bridge.scheduler import Scheduler
from bridge.staff_room import Names, StaffRoom
from config.settings import Settings
from moderation import casework as cw
from moderation import store
from moderation.casework import ALL_SPACES, CaseKind, CaseStatus, ModCase, SanctionKind
from moderation.casework.stats import LabelWeek, per_label_week, review_times
from moderation.escalation.stats import WeekAck
from moderation.models import ModerationDecision
from moderation.types import Message
from spaces.models import ProvisionedRoom
from spaces.staff import Staff

log = logging.getLogger(__name__)

DmRoom = Callable[[str], Awaitable[str]]
HELD_BURST = timedelta(minutes=10)  # refused messages of one member in one room within this share a case


@dataclass(frozen=True)
class CaseView:
    """A case as a moderator reviews it: the kept excerpt and the signals with their evidence spans."""

    case: ModCase
    excerpt: str | None
    evidence: list[dict[str, Any]]
    reporters: list[str]
    reports_against: int


class ModerationDesk:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        gateway: NioGateway,
        scheduler: Scheduler,
        clock: Clock,
        *,
        staff: Callable[[], Staff],
        dm_room: DmRoom,
    ):
        cfg = settings.moderation
        self.settings = settings
        self.server_name = settings.matrix.server_name
        self.gateway = gateway
        self.scheduler = scheduler
        self.clock = clock
        self._staff = staff  # asked each time: a reloaded staff file applies at once
        self.dm_room = dm_room
        self.db = DbLane(engine, "moderation-db")
        self.text_retention = timedelta(days=cfg.flag_retention_days)
        self.appeal_retention = timedelta(days=cfg.appeal_retention_days)
        self.appeal_wait = timedelta(hours=cfg.appeal_reminder_hours)
        self.report_poll_seconds = cfg.report_poll_seconds
        self.trust = (cfg.trusted_reporter_min_upheld, cfg.trusted_reporter_min_share)
        self.hide_after = cfg.hide_after_trusted_reports
        self.room = StaffRoom(
            gateway,
            alias=f"#{cfg.moderators_room_alias}:{self.server_name}",
            name="Hearth moderators",
            topic="Flagged and reported messages, appeals and moderation commands (!mod help).",
            members=staff().moderation_ids,
        )
        self.names = Names(gateway)
        self.sanctions = Sanctions(
            self.db,
            gateway,
            clock,
            staff,
            cfg.sanction_defaults,
            bot_user=settings.matrix.bot_user_id,
            notify_member=self.tell_member,
        )
        self.reports = ReportReader(
            gateway,
            record_event_report=self._record_event_report,
            record_user_report=self._record_user_report,
            last_recorded=lambda prefix: self.db(lambda s: cw.last_synapse_report(s, prefix)),
        )
        self.commands = ModCommands(self)

    @property
    def staff(self) -> Staff:
        """The staff file as last loaded well."""
        return self._staff()

    @property
    def tz(self) -> tzinfo:
        """The moderator rota's time zone (the clinicians' when there is none): how times are shown."""
        return self.staff.moderation_zone

    async def staff_reloaded(self) -> None:
        """After a staff file reload: invite newly listed moderators and admins to the moderators'
        room (nobody is removed: ``hearth spaces apply`` reports who is no longer listed)."""
        self.room.members = tuple(self.staff.moderation_ids)
        try:
            await self.room.invite_missing_staff()
        except (GatewayError, TimeoutError, OSError) as e:  # provisioning reconciles later
            log.warning("after the reload, could not invite new moderators to their room: %s", e)

    # --- life cycle ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Before the gate answers: the mutes in force (from the database)."""
        await self.sanctions.refresh()

    def start(self) -> None:
        now = self.scheduler.now_wall()
        jobs: list[tuple[str, Callable[[], Awaitable[Any]], float]] = [
            ("mod-reports", self.reports.read, self.report_poll_seconds),
            ("mod-expiry", self.sanctions.expire_due, 15.0),
            ("mod-appeals", self.remind_appeals, 300.0),
        ]
        for job_id, fn, seconds in jobs:
            self.scheduler.aps.add_job(
                fn,
                "interval",
                seconds=seconds,
                id=job_id,
                next_run_time=now,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )

    def close(self) -> None:
        self.db.close()

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.reports.last_error is None,
            "moderators_room": self.room.room_id,
            "report_reads": self.reports.reads,
            "report_error": self.reports.last_error,
        }

    # --- talking ------------------------------------------------------------------------------

    async def tell_member(self, user: str, content: dict[str, Any]) -> None:
        room = await self.dm_room(user)
        await self.gateway.send(room, content)

    async def post(self, content: dict[str, Any], txn_id: str | None = None) -> str | None:
        """Post in the moderators' room; the event ID, or None if the homeserver refused."""
        try:
            room = await self.room.ensure()
            return str(await self.gateway.send(room, content, txn_id=txn_id))
        except (GatewayError, TimeoutError, OSError) as e:
            log.warning("could not post in the moderators' room: %s", e)
            return None

    async def _post_card(
        self, content: dict[str, Any], txn_id: str, row: Callable[[Session], ModCase | cw.Appeal]
    ) -> None:
        """Post a card and remember its event on the case or appeal (so it can be edited and reacted to)."""
        event_id = await self.post(content, txn_id=txn_id)
        if event_id is None:
            return

        def remember(s: Session) -> None:
            found = row(s)
            found.card_event_id = event_id
            s.add(found)

        await self.db(remember)

    def on_duty(self) -> list[str]:
        return list(self.staff.on_duty_moderators(self.clock.now()))

    def deciders(self, imposed_by: str) -> list[str]:
        """Who is asked to decide an appeal: the moderators on duty other than the one who acted, or
        failing that every other moderator and admin."""
        others = [u for u in self.on_duty() if u != imposed_by]
        return others or [u for u in self.staff.moderation_ids if u != imposed_by]

    # --- cases --------------------------------------------------------------------------------

    async def flag(self, message: Message, reason: str, signals: list[str], *, held: bool = False) -> ModCase:
        """The pipeline asked for review: a case and a card. ``held``: the gate refused the message,
        so only the moderators will ever read it (its text is kept here, until purged)."""
        now = self.clock.now()
        # "rules.method_instruction:method_instruction[1]" -> the label "rules.method_instruction"
        signals = sorted({label.split(" ", 1)[0].split(":", 1)[0] for label in signals})
        priority = 3 if held or any(s.startswith(("harm.", "rules.")) for s in signals) else 1

        def write(s: Session) -> tuple[ModCase, bool]:
            if held:
                # A burst of refused messages from one member is one card, not one each.
                recent = cw.open_held_case(s, message.sender, message.room_id, since=now - HELD_BURST)
                if recent is not None:
                    return cw.add_held(s, recent.id, signals=signals, now=now), False
            store.keep_text(
                s,
                event_id=message.event_id,
                room_id=message.room_id,
                sender=message.sender,
                body=message.body,
                reason=reason,
                now=now,
                retention=self.text_retention,
            )
            return cw.open_case(
                s,
                kind=CaseKind.HELD if held else CaseKind.FLAG,
                room_id=message.room_id,
                event_id=message.event_id,
                subject=message.sender,
                space=message.space,
                reason="refused at the gate, kept for review" if held else "flagged by screening",
                signals=signals,
                priority=priority,
                now=now,
            )

        case, _ = await self.db(write)
        await self.show_case(case.id)
        return case

    async def _record_event_report(self, row: dict[str, Any]) -> bool:
        room_id, event_id = str(row.get("room_id", "")), str(row.get("event_id", ""))
        report_id = int(row["id"])
        space = await self._space_of(room_id)
        if space is None:
            log.info(
                "report %d is about a room that is not one of Hearth's group rooms; not a case", report_id
            )
            return False
        event = await self.reports.event_of(report_id)
        content = (event or {}).get("content") or {}
        sender = str(row.get("sender") or (event or {}).get("sender") or "")
        body = content.get("body") if isinstance(content, dict) else None
        return await self._record_report(
            source_key=f"synapse:{report_id}",
            synapse_id=report_id,
            room_id=room_id,
            event_id=event_id,
            subject=sender,
            space=space,
            reporter=str(row.get("user_id", "")),
            reason=str(row.get("reason") or ""),
            body=body if isinstance(body, str) else None,
        )

    async def _record_user_report(self, row: dict[str, Any]) -> bool:
        report_id = int(row["id"])
        target = str(row.get("target_user_id", ""))
        return await self._record_report(
            source_key=f"synapse-user:{report_id}",
            synapse_id=report_id,
            room_id="",
            event_id=f"member:{target}",  # a report of the member as a whole: one open case per member
            subject=target,
            space=None,
            reporter=str(row.get("user_id", "")),
            reason=str(row.get("reason") or ""),
            body=None,
        )

    async def report_by_reply(self, ev: TimelineEvent, target_event: str, reason: str) -> bool:
        """``!report [reason]`` as a reply in a group room: a report like the homeserver's."""
        space = await self._space_of(ev.room_id)
        if space is None:
            return False
        try:
            event = await self.gateway.get_event(ev.room_id, target_event)
        except GatewayError as e:
            log.warning("!report %s: cannot read the reported event: %s", ev.event_id, e)
            return False
        content = event.get("content") or {}
        body = content.get("body") if isinstance(content, dict) else None
        return await self._record_report(
            source_key=f"reply:{ev.event_id}",
            synapse_id=None,
            room_id=ev.room_id,
            event_id=target_event,
            subject=str(event.get("sender", "")),
            space=space,
            reporter=ev.sender,
            reason=reason,
            body=body if isinstance(body, str) else None,
        )

    async def _record_report(
        self,
        *,
        source_key: str,
        synapse_id: int | None,
        room_id: str,
        event_id: str,
        subject: str,
        space: str | None,
        reporter: str,
        reason: str,
        body: str | None,
    ) -> bool:
        now = self.clock.now()

        def write(s: Session) -> tuple[ModCase, bool] | None:
            if body is not None:
                store.keep_text(
                    s,
                    event_id=event_id,
                    room_id=room_id,
                    sender=subject,
                    body=body,
                    reason="reported",
                    now=now,
                    retention=self.text_retention,
                )
            return cw.add_report(
                s,
                source_key=source_key,
                synapse_id=synapse_id,
                room_id=room_id,
                event_id=event_id,
                subject=subject,
                space=space,
                reporter=reporter,
                reason=reason,
                now=now,
                trusted=cw.reporter_record(s, reporter).trusted(*self.trust),
            )

        result = await self.db(write)
        if result is None:
            return False
        case, _ = result
        if self.hide_after and case.trusted_reports >= self.hide_after and case.hidden_at is None:
            await self._hide(case)
        await self.show_case(case.id)
        log.info("report %s recorded on case %s", source_key, case.id)
        return True

    async def _hide(self, case: ModCase) -> None:
        """Enough trusted reporters: redact the message until a moderator decides, its text kept for
        them. Never a message read as crisis (nobody in crisis is silenced), never a staff member's,
        never one whose text Hearth could not keep."""

        def check(s: Session) -> str | None:
            decision = s.get(ModerationDecision, case.event_id)
            if decision is not None and any(d.get("kind") == "escalate" for d in decision.dispositions):
                return "it was read as a crisis"
            if case.subject in self.staff.protected_ids:
                return "a staff member wrote it"
            if not case.room_id or cw.excerpt(s, case.event_id) is None:
                return "its text could not be kept for review"
            return None

        why_not = await self.db(check)
        if why_not is not None:
            log.info("case %s: not hidden although trusted reporters reported it: %s", case.id, why_not)
            return
        try:
            await self.gateway.redact(
                case.room_id, case.event_id, reason="hidden until a moderator reviews it"
            )
        except GatewayError as e:
            log.warning("case %s: could not hide the message: %s", case.id, e)
            return
        now = self.clock.now()

        def record(s: Session) -> None:
            cw.hide(s, case.id, now=now)
            cw.audit(
                s,
                actor=cw.SYSTEM_ACTOR,
                action="hide",
                now=now,
                subject=case.subject,
                case_id=case.id,
                detail=f"{case.trusted_reports} trusted reports",
            )

        await self.db(record)
        log.info("case %s: message hidden after %d trusted reports", case.id, case.trusted_reports)

    async def _restore(self, case: ModCase) -> None:
        """A hidden message a moderator found fine goes back to its room (a redaction cannot be undone,
        so the bot posts it, quoting its author) and its author is told."""
        text = await self.db(lambda s: cw.excerpt(s, case.event_id))
        name = await self.names.member(case.room_id, case.subject) or case.subject
        if text is not None:
            body = (
                f"Restored by the moderators (it was hidden while they looked at it). {name} wrote:\n\n{text}"
            )
            try:
                await self.gateway.send(
                    case.room_id,
                    {
                        "msgtype": "m.notice",
                        "body": body,
                        "format": "org.matrix.custom.html",
                        "formatted_body": f"<p>Restored by the moderators (it was hidden while they looked at it). "
                        f"{html.escape(name)} wrote:</p><blockquote>{html.escape(text)}</blockquote>",
                        "m.mentions": {},
                    },
                    txn_id=f"hearth.restore.{case.id}",
                )
            except GatewayError as e:
                log.warning("case %s: could not post the restored message: %s", case.id, e)
        await self.tell_member(
            case.subject,
            render.member_text(
                "A message of yours was hidden for a moment while the moderators looked at a report about it. "
                "They found nothing wrong, and it is back in the room. Sorry for the interruption."
            ),
        )

    async def _space_of(self, room_id: str) -> str | None:
        def read(s: Session) -> str | None:
            row = s.exec(select(ProvisionedRoom).where(ProvisionedRoom.room_id == room_id)).first()
            return row.space_slug if row is not None else None

        return await self.db(read)

    async def show_case(self, case_id: str) -> None:
        """Post the case's card, or edit it when it has one."""

        def read(s: Session) -> tuple[ModCase, str | None, list[str], int, int]:
            case = cw.get_case(s, case_id)
            reporters = list(dict.fromkeys(r.reporter for r in cw.reporters_of(s, case.id)))
            earlier = s.exec(
                select(func.count()).select_from(cw.Sanction).where(col(cw.Sanction.user_id) == case.subject)
            ).one()
            return case, cw.excerpt(s, case.event_id), reporters, cw.reports_against(s, case.subject), earlier

        case, excerpt, reporters, against, earlier = await self.db(read)
        room_name = await self.names.room(case.room_id) if case.room_id else "(a report of the member)"
        sender_name = await self.names.member(case.room_id, case.subject) if case.room_id else None
        content = render.case_card(
            case,
            excerpt=excerpt,
            room_name=room_name,
            sender_name=sender_name,
            reporters=reporters,
            reports_against=against,
            earlier_sanctions=earlier,
            on_duty=self.on_duty(),
            names=self.staff.display_names,
            tz=self.tz,
            server_name=self.server_name,
        )
        if case.card_event_id is not None:
            await self.post(render.edit_of(case.card_event_id, content))
            return
        await self._post_card(content, f"hearth.mod_case.{case.id}", lambda s: cw.get_case(s, case.id))

    # --- what moderators do (the commands and the API both come here) ------------------------

    def require_moderator(self, actor: str) -> None:
        if actor not in self.staff.moderation_ids:
            raise cw.NotPermitted(cw.MODERATORS_ONLY)

    async def cases(self, status: str = "open", limit: int = 100) -> list[ModCase]:
        if status == CaseStatus.OPEN.value:
            return await self.db(lambda s: cw.open_cases(s, limit=limit))

        def decided(s: Session) -> list[ModCase]:
            q = (
                select(ModCase)
                .where(ModCase.status == status)
                .order_by(col(ModCase.decided_at).desc())
                .limit(limit)
            )
            return list(s.exec(q))

        return await self.db(decided)

    async def view(self, case_id: str) -> CaseView:
        def read(s: Session) -> CaseView:
            case = cw.get_case(s, case_id)
            decision = s.get(ModerationDecision, case.event_id)
            signals = list(decision.signals) if decision is not None else []
            # The signals that caused the case first; a report shows whatever screening found.
            evidence = [sig for sig in signals if sig.get("label") in case.signals] or signals
            reporters = list(dict.fromkeys(r.reporter for r in cw.reporters_of(s, case.id)))
            return CaseView(
                case, cw.excerpt(s, case.event_id), evidence, reporters, cw.reports_against(s, case.subject)
            )

        return await self.db(read)

    async def dismiss(self, actor: str, case_id: str, note: str = "") -> ModCase:
        self.require_moderator(actor)
        now = self.clock.now()

        def write(s: Session) -> ModCase:
            case = cw.decide_case(
                s, case_id, actor=actor, status=CaseStatus.DISMISSED, decision=note or "dismissed", now=now
            )
            cw.audit(
                s, actor=actor, action="dismiss", now=now, subject=case.subject, case_id=case.id, detail=note
            )
            return case

        case = await self.db(write)
        if case.hidden_at is not None:
            await self._restore(case)
        await self.show_case(case.id)
        return case

    async def actioned(self, actor: str, case_id: str, decision: str) -> None:
        """Mark an open case actioned (after a sanction or redaction on it) and edit its card."""
        now = self.clock.now()

        def write(s: Session) -> None:
            case = cw.get_case(s, case_id)
            if case.status == CaseStatus.OPEN.value:
                cw.decide_case(
                    s, case.id, actor=actor, status=CaseStatus.ACTIONED, decision=decision, now=now
                )

        await self.db(write)
        await self.show_case(case_id)

    async def redact(
        self, actor: str, room_id: str, event_id: str, reason: str, case_id: str | None = None
    ) -> None:
        self.require_moderator(actor)
        try:
            await self.gateway.redact(room_id, event_id, reason=reason.strip() or "removed by a moderator")
        except GatewayError as e:
            raise cw.CaseworkError(f"The homeserver refused to redact {event_id}: {e}") from None
        now = self.clock.now()
        await self.db(
            lambda s: cw.audit(
                s,
                actor=actor,
                action="redact",
                now=now,
                case_id=case_id,
                detail=f"{event_id} {reason}".strip(),
            )
        )
        log.info("moderator %s redacted %s", actor, event_id)
        if case_id is not None:
            await self.actioned(actor, case_id, "message redacted")

    async def redact_case(self, actor: str, case_id: str, reason: str = "") -> ModCase:
        case = await self.db(lambda s: cw.get_case(s, case_id))
        if case.kind == CaseKind.HELD.value or not case.room_id:
            raise cw.CaseworkError(
                f"Case {case.id}'s message was never delivered: there is nothing to redact."
            )
        await self.redact(actor, case.room_id, case.event_id, reason, case.id)
        return await self.db(lambda s: cw.get_case(s, case.id))

    async def resolve_scope(self, user: str, scope: str | None, case: ModCase | None) -> str:
        """``*``, a named space, the case's space, or the one space the member is in now."""
        if scope == ALL_SPACES:
            return ALL_SPACES
        if scope:
            if not await self.sanctions.rooms_of(scope):
                raise cw.CaseworkError(f"There is no Hearth space {scope!r}.")
            return scope
        if case is not None and case.space:
            return case.space
        spaces = await self.sanctions.spaces_of(user)
        if len(spaces) == 1:
            return spaces[0]
        if not spaces:
            raise cw.CaseworkError(f"{user} is in none of Hearth's rooms now: say --space <name> or --all.")
        raise cw.CaseworkError(
            f"{user} is in several spaces ({', '.join(spaces)}): say --space <name> or --all, or reply to a card."
        )

    async def sanction(
        self,
        actor: str,
        user: str,
        kind: SanctionKind,
        *,
        reason: str,
        duration: timedelta | None | object = DEFAULT,
        scope: str | None = None,
        case_id: str | None = None,
    ) -> Imposed:
        """Warn, mute or ban across a space; a case it was decided on is marked actioned."""
        self.require_moderator(actor)
        case = await self.db(lambda s: cw.get_case(s, case_id)) if case_id else None
        if kind is SanctionKind.WARN and not (reason.strip() or (case.reason if case else "")):
            raise cw.CaseworkError("A warning needs a reason the member will read.")
        where = await self.resolve_scope(user, scope, case)
        imposed = await self.sanctions.impose(
            actor,
            user,
            kind,
            scope=where,
            reason=reason.strip() or (case.reason if case is not None else ""),
            duration=duration,
            case_id=case.id if case is not None else None,
        )
        if case is not None:
            await self.actioned(actor, case.id, render.sanction_words(imposed.sanction, self.tz))
        return imposed

    async def lift(self, actor: str, user: str, kind: SanctionKind) -> list[cw.Sanction]:
        self.require_moderator(actor)
        return await self.sanctions.lift(actor, user, kind)

    async def note(self, actor: str, user: str, text: str) -> cw.ModNote:
        self.require_moderator(actor)
        now = self.clock.now()

        def write(s: Session) -> cw.ModNote:
            note = cw.add_note(s, user, by=actor, text=text, now=now)
            cw.audit(s, actor=actor, action="note", now=now, subject=user, detail=", ".join(note.labels))
            return note

        return await self.db(write)

    async def member_file(self, user: str) -> cw.MemberFile:
        return await self.db(lambda s: cw.member_file(s, user))

    async def audit_log(self, since: timedelta) -> list[cw.ModAudit]:
        start = self.clock.now() - since
        return await self.db(lambda s: cw.audit_since(s, start))

    async def figures(self, weeks: int = 8) -> tuple[list[LabelWeek], list[WeekAck]]:
        """Blocked and flagged messages per label per week, and time to review per week."""
        now = self.clock.now()
        since = now - timedelta(weeks=weeks)

        def read(s: Session) -> tuple[list[tuple[datetime, list[dict[str, Any]]]], list[ModCase]]:
            # Only decisions that blocked or flagged (the JSON as text, on SQLite and PostgreSQL alike).
            text = cast(col(ModerationDecision.dispositions), Text)
            q = select(ModerationDecision.decided_at, ModerationDecision.dispositions).where(
                col(ModerationDecision.decided_at) >= since,
                text.like('%"block"%') | text.like('%"flag"%'),
            )
            decisions = [(_aware(d), list(disp)) for d, disp in s.exec(q)]
            cases = list(s.exec(select(ModCase).where(col(ModCase.created_at) >= since)))
            return decisions, cases

        decisions, cases = await self.db(read)
        return per_label_week(decisions, now=now, weeks=weeks), review_times(cases, now=now, weeks=weeks)

    # --- appeals ------------------------------------------------------------------------------

    async def appeal(self, user: str, text: str) -> dict[str, Any]:
        """``!appeal <text>`` from the member's private room: the reply to them."""
        if not text.strip():
            return render.member_text(
                "To appeal, write !appeal followed by what you'd like the moderators to know."
            )
        now = self.clock.now()
        try:
            appeal = await self.db(
                lambda s: cw.open_appeal(s, user, text, now=now, retention=self.appeal_retention)
            )
        except cw.CaseworkError as e:
            return render.member_text(str(e))
        await self._post_appeal(appeal.id)
        return render.member_text(
            f"Thank you. Your appeal {appeal.id} is with the moderators; a different moderator from the "
            "one who decided will look at it, and you'll hear back here."
        )

    async def _post_appeal(self, appeal_id: str) -> None:
        def read(s: Session) -> tuple[cw.Appeal, cw.Sanction]:
            appeal = cw.get_appeal(s, appeal_id)
            sanction = s.get(cw.Sanction, appeal.sanction_id)
            assert sanction is not None
            return appeal, sanction

        appeal, sanction = await self.db(read)
        content = render.appeal_card(
            appeal, sanction, names=self.staff.display_names, on_duty=self.deciders(sanction.by), tz=self.tz
        )
        await self._post_card(content, f"hearth.appeal.{appeal.id}", lambda s: cw.get_appeal(s, appeal.id))

    async def decide_appeal_row(self, actor: str, appeal_id: str, *, lift: bool, note: str) -> cw.Appeal:
        """Uphold or lift an appeal (not by the moderator who imposed the sanction); the member is told."""
        self.require_moderator(actor)
        now = self.clock.now()

        def write(s: Session) -> tuple[cw.Appeal, cw.Sanction]:
            appeal, sanction = cw.decide_appeal(s, appeal_id, actor=actor, lift=lift, note=note, now=now)
            cw.audit(
                s,
                actor=actor,
                action=f"appeal_{appeal.status}",
                now=now,
                subject=appeal.user_id,
                sanction_id=sanction.id,
                appeal_id=appeal.id,
                detail=note,
            )
            return appeal, sanction

        appeal, sanction = await self.db(write)
        if lift:
            await self.sanctions.end(sanction)
        await self.tell_member(appeal.user_id, render.appeal_decision_notice(appeal, lift))
        return appeal

    async def decide_appeal(self, actor: str, appeal_id: str, *, lift: bool, note: str) -> str:
        appeal = await self.decide_appeal_row(actor, appeal_id, lift=lift, note=note)
        sanction = await self.db(lambda s: s.get(cw.Sanction, appeal.sanction_id))
        words = render.sanction_words(sanction, self.tz) if sanction is not None else appeal.sanction_id
        return f"Appeal {appeal.id} {appeal.status}: {words}."

    async def remind_appeals(self) -> int:
        """Scheduler job: remind the deciders of appeals waiting longer than ``appeal_reminder_hours``."""
        now = self.clock.now()

        def due(s: Session) -> list[tuple[cw.Appeal, str]]:
            out = []
            for a in cw.appeals_waiting(s, now=now, longer_than=self.appeal_wait):
                a.reminded_at = now
                s.add(a)
                sanction = s.get(cw.Sanction, a.sanction_id)
                out.append((a, sanction.by if sanction is not None else ""))
            return out

        rows = await self.db(due)
        for appeal, imposed_by in rows:
            await self.post(
                render.appeal_reminder(
                    appeal, names=self.staff.display_names, on_duty=self.deciders(imposed_by), tz=self.tz
                )
            )
        return len(rows)

    # --- events -------------------------------------------------------------------------------

    async def handle_event(self, ev: TimelineEvent) -> None:
        await self.commands.handle_event(ev)


def _aware(dt: datetime) -> datetime:
    """SQLite hands back naive UTC; PostgreSQL aware."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
