"""The escalation desk: the bridge side of crisis escalation, and the one way in.

The domain (``moderation.escalation``) owns the state machine, the audit trail and the outbox; the
desk drives it from the outside world and implements :class:`~moderation.escalation.EscalationPort`
for screening and actions:

- :meth:`EscalationDesk.raise_for` commits an escalation for a crisis verdict (retrying once as a
  merge when a concurrent insert for the same episode won), sends the committed alert at once and
  wakes the notifier; a second call for the same event (the after-delivery safety net) is answered
  from memory unless it brings a higher tier;
- acting: take, acknowledge, resolve, notes, the person's care-room replies and ``!alone``; the
  staff-room commands (``commands``), the staff API and the dashboard all come here, so permissions
  and the audit are the same everywhere. Only clinicians listed in the staff file may acknowledge,
  take or resolve (a volunteer moderator's ✅ must not stop clinicians being re-paged); any listed
  staff member may read escalations and add notes;
- its parts, by job: ``notifier`` (the outbox), ``staff_room``, ``commands``, ``timers`` (SLA),
  ``render`` (alert contents) and ``webhooks`` (signing).

Message text is never logged: logs carry escalation IDs, event IDs and notification kinds only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.direct_rooms import DirectRooms
from bridge.escalation import render
from bridge.escalation.commands import StaffCommands
from bridge.escalation.config import DeskConfig, Reread, reread
from bridge.escalation.notifier import Notifier, Work
from bridge.escalation.timers import SlaTimers
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.regions import region_for
from bridge.scheduler import Scheduler
from bridge.staff_room import Names, StaffRoom
from bridge.tasks import TaskGroup
from config.ids import RoomID
from config.resources import CrisisResources
from config.settings import Settings
from moderation import escalation as dom
from moderation.escalation import (
    Escalation,
    EscalationError,
    EscalationTrail,
    NotificationKind,
    NotStaff,
    care,
)
from moderation.labels import TIER_RANK
from moderation.types import Message, Signal, Verdict
from spaces.staff import Staff, on_call

log = logging.getLogger(__name__)

RAISED_MEMORY = 4096  # events whose escalation this process has committed (the safety net's shortcut)


class NotPermitted(NotStaff):
    """A listed staff member whose role does not allow the action (e.g. a moderator acknowledging)."""

    def __init__(self, actor: str, message: str) -> None:
        EscalationError.__init__(self, message)
        self.actor = actor


class EscalationDesk:
    """Raises escalations and takes staff actions; owns the notifier, staff room, commands and timers."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        gateway: NioGateway,
        scheduler: Scheduler,
        clock: Clock,
        tasks: TaskGroup,
    ):
        self.cfg = cfg = DeskConfig.load(settings)
        self.engine = engine
        self.gateway = gateway
        self.clock = clock
        self.tasks = tasks
        # Set by the service once the bot is logged in: nothing is sent before that.
        self.logged_in = asyncio.Event()
        # A lane of its own: an escalation's commit never queues behind the default thread pool's
        # screening work (decisions, the bot's ledger), which is busiest exactly when a crisis comes.
        self.db = DbLane(engine, "escalation-db")
        self.direct_rooms = DirectRooms(gateway, pool_size=cfg.care_room_pool)
        self.staff_room = StaffRoom(
            gateway,
            alias=cfg.staff_room_alias,
            name="Hearth staff",
            topic="Crisis escalations for clinicians. React ✅ or send !ack <id> to acknowledge; !esc list; !esc help.",
            members=cfg.staff.clinician_ids,
        )
        self.names = Names(gateway)
        self.notifier = Notifier(
            cfg, self.db, gateway, clock, tasks, self.staff_room, self.names, self.direct_rooms
        )
        self.timers = SlaTimers(cfg, self.db, scheduler, clock, self.notifier.wake)
        self.commands = StaffCommands(cfg, self, self.db, gateway, clock, self.staff_room, self.names)
        self._raised: OrderedDict[str, tuple[int, asyncio.Future[Escalation]]] = OrderedDict()
        self.reload_error: str | None = None  # the last reload's refusals, until one succeeds
        self.reloads = 0  # reloads finished since start (whether they took or not)
        self._reloading = asyncio.Lock()  # two quick SIGHUPs: the later file wins, in order

    # --- configuration others read ---------------------------------------------------------

    @property
    def staff(self) -> Staff:
        return self.cfg.staff

    @property
    def resources(self) -> CrisisResources:
        return self.cfg.resources

    @property
    def default_region(self) -> str | None:
        return self.cfg.default_region

    def current_staff(self) -> Staff:
        """The staff file as last loaded well (what the other desks and sign-in ask each time)."""
        return self.cfg.staff

    @property
    def clinicians(self) -> frozenset[str]:
        return self.cfg.clinicians

    @property
    def everyone(self) -> frozenset[str]:
        return self.cfg.everyone

    @property
    def staff_room_id(self) -> RoomID | None:
        return self.staff_room.room_id

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the notifier and the SLA timers (call after the scheduler has started)."""
        self.notifier.start(self.logged_in)
        self.timers.start()
        self.tasks.create(self.timers.rebuild(), name="escalation-timers")
        self.tasks.create(self._after_login(self.staff_room.prepare()), name="escalation-staff-room")
        self.tasks.create(
            self._after_login(self.direct_rooms.keep_pool_filled()), name="escalation-room-pool"
        )

    async def _after_login(self, work: Any) -> None:
        await self.logged_in.wait()
        await work

    async def reload(self, settings: Settings) -> str | None:
        """SIGHUP: read the staff file and the crisis resources again. A good file takes effect at
        once, for every part (they all read ``self.cfg``); a broken one changes nothing, and its
        refusal (file, key, reason) is logged and kept for /healthz until a reload succeeds.

        What is in flight stays as it was: alerts already committed to the outbox go to the clinicians
        who were on call when the escalation was raised (the outbox rows name them); re-pages, new
        escalations and every permission check from now on use the new file. Newly listed clinicians
        are invited to the staff room; nobody is removed from it (``hearth spaces apply`` reports who is
        no longer listed)."""
        async with self._reloading:
            got = await asyncio.to_thread(reread, settings)
            self._apply(got)
        if got.staff is not None:
            try:
                await self.staff_room.invite_missing_staff()
            except (GatewayError, TimeoutError, OSError) as e:  # provisioning reconciles later
                log.warning("after the reload, could not invite new clinicians to the staff room: %s", e)
        return self.reload_error

    def _apply(self, got: Reread) -> None:
        if got.staff is not None:
            self.cfg.use_staff(got.staff)
            self.staff_room.members = tuple(got.staff.clinician_ids)
            log.info("staff file reloaded: %d staff listed", len(got.staff.protected_ids))
        if got.resources is not None:
            self.cfg.use_resources(got.resources)
            log.info("crisis resources reloaded: %d regions", len(got.resources.regions))
        for error in got.errors:
            log.error("reload refused, the running configuration stays: %s", error)
        self.reload_error = "; ".join(got.errors) or None
        self.reloads += 1

    async def close(self) -> None:
        await self.notifier.close()
        self.db.close()

    # --- the port: raising -----------------------------------------------------------------

    async def raise_for(self, message: Message, verdict: Verdict) -> Escalation | None:
        """:class:`~moderation.escalation.EscalationPort`: raise (or merge into) the sender's
        escalation for the verdict's first ``escalate`` disposition; None when it does not escalate."""
        escalate = verdict.of_kind("escalate")
        if not escalate:
            return None
        d = escalate[0]
        tier, category = d.tier or "high", d.category or "ideation"
        rank = TIER_RANK.get(tier, 0)
        seen = self._raised.get(message.event_id)
        if seen is not None and seen[0] >= rank:
            return await asyncio.shield(seen[1])  # raised (or being raised) already for this event
        done: asyncio.Future[Escalation] = asyncio.get_running_loop().create_future()
        self._raised[message.event_id] = (rank, done)
        while len(self._raised) > RAISED_MEMORY:
            self._raised.popitem(last=False)
        try:
            esc = await self.raise_escalation(message, tier, category, verdict.signals, excerpt=message.body)
        except BaseException as e:
            self._raised.pop(message.event_id, None)  # not committed: the next call tries again
            done.set_exception(e)
            done.exception()  # retrieved: nobody else may be waiting
            raise
        done.set_result(esc)
        return esc

    async def raise_escalation(
        self,
        message: Message,
        tier: str,
        category: str,
        signals: Sequence[Signal],
        excerpt: str,
        locale: str | None = None,
    ) -> Escalation:
        """Commit an escalation (or merge into the sender's active one in that room) for a crisis
        message, then send its alert. Returns the escalation as committed."""
        now = self.clock.now()
        paged = on_call(self.cfg.staff.rota, now)

        def work(s: Session) -> tuple[Escalation, bool, list[Work]]:
            # The person's help is for where they are: their own choice, the space's, the operator's.
            where = locale or region_for(
                s, user=message.sender, space=message.space, default=self.cfg.default_region
            )
            esc, created = dom.raise_escalation(
                s,
                room_id=message.room_id,
                sender=message.sender,
                event_id=message.event_id,
                severity=tier,
                category=category,
                signals=signals,
                excerpt=excerpt,
                space=message.space,
                locale=where,
                now=now,
                sla=self.cfg.tuning.sla,
                on_call=paged,
                webhook=self.cfg.webhook_enabled,
            )
            alerts = (
                [
                    Work(n, esc)
                    for n in dom.pending_notifications(s, now, escalation_id=esc.id)
                    if n.kind == NotificationKind.STAFF_ALERT.value
                ]
                if created
                else []
            )
            return esc, created, alerts

        try:
            esc, created, alerts = await self.db(work)
        except IntegrityError:
            # A concurrent raise for the same episode committed first: this one merges into it.
            esc, created, alerts = await self.db(work)
        log.info(
            "escalation %s %s for event %s (%s, %s)",
            esc.id,
            "opened" if created else "updated",
            message.event_id,
            esc.severity,
            esc.category,
        )
        self.timers.schedule(esc.id, esc.sla_deadline)
        if alerts and self.logged_in.is_set():
            # The committed alert goes out now, not on the notifier's next pass; the notifier is woken
            # when it has gone, so the person's resources (a new DM room: Synapse's heaviest request)
            # follow it rather than compete with it. Any failure leaves it in the outbox for retry.
            for alert in alerts:
                self.notifier.deliver_soon(alert)
        else:
            self.notifier.wake()
        return esc

    # --- acting (reactions, commands, the API and the dashboard all come here) --------------

    def _require(self, actor: str, *, clinician: bool) -> None:
        if actor not in self.everyone:
            raise NotStaff(actor)
        if clinician and actor not in self.clinicians:
            raise NotPermitted(
                actor,
                f"{actor} is listed as a moderator: only clinicians can acknowledge or "
                "resolve escalations. You can add a note with !note <id> <text>.",
            )

    def require_staff(self, actor: str) -> None:
        """Raise :class:`NotStaff` unless ``actor`` is listed in the staff file."""
        self._require(actor, clinician=False)

    async def acknowledge(self, esc_id: str, actor: str, note: str | None = None) -> Escalation:
        """A clinician takes the escalation; stops re-paging and edits the alert."""
        self._require(actor, clinician=True)
        now = self.clock.now()
        esc = await self.db(
            lambda s: dom.acknowledge(
                s,
                esc_id,
                actor=actor,
                staff=self.clinicians,
                now=now,
                note=note,
                webhook=self.cfg.webhook_enabled,
            )
        )
        log.info("escalation %s acknowledged by %s", esc.id, actor)
        self.timers.unschedule(esc.id)
        self.notifier.wake()
        return esc

    async def take(self, esc_id: str, actor: str, *, anyway: bool = False) -> Escalation:
        """A clinician takes the case into the person's care room (acknowledging it if needed)."""
        self._require(actor, clinician=True)
        now = self.clock.now()
        esc = await self.db(
            lambda s: care.take(s, esc_id, actor=actor, clinicians=self.clinicians, now=now, anyway=anyway)
        )
        log.info("escalation %s taken by %s", esc.id, actor)
        self.timers.unschedule(esc.id)
        self.notifier.wake()
        return esc

    async def care_message(self, user: str, room: str, event_id: str) -> Escalation | None:
        """The person wrote in their care room: attach it to their active case (re-paging the on-call
        clinician while nobody has taken it). None when they have no active case."""
        now = self.clock.now()
        paged = on_call(self.cfg.staff.rota, now)

        def work(s: Session) -> Escalation | None:
            esc = care.active_case(s, user, room)
            if esc is None:
                return None
            care.member_replied(s, esc.id, event_id=event_id, room_id=room, now=now, on_call=paged)
            return esc

        esc = await self.db(work)
        if esc is not None:
            self.notifier.wake()
        return esc

    async def leave_alone(self, user: str, room: str) -> Escalation | None:
        """The person asked to be left alone (``!alone``); None when they have no active case."""
        now = self.clock.now()

        def work(s: Session) -> Escalation | None:
            esc = care.active_case(s, user, room)
            return care.leave_alone(s, esc.id, now=now) if esc is not None else None

        esc = await self.db(work)
        if esc is not None:
            self.notifier.wake()
        return esc

    async def resolve(self, esc_id: str, actor: str, outcome: str, note: str | None = None) -> Escalation:
        """Close the escalation with an outcome (ValueError names the valid ones)."""
        self._require(actor, clinician=True)
        parsed = dom.parse_outcome(outcome)
        now = self.clock.now()
        retention = timedelta(days=self.cfg.tuning.excerpt_retention_days)
        esc = await self.db(
            lambda s: dom.resolve(
                s,
                esc_id,
                actor=actor,
                staff=self.clinicians,
                outcome=parsed,
                now=now,
                note=note,
                webhook=self.cfg.webhook_enabled,
                excerpt_retention=retention,
            )
        )
        log.info("escalation %s resolved by %s (%s)", esc.id, actor, parsed.value)
        self.timers.unschedule(esc.id)
        self.notifier.wake()
        return esc

    async def add_note(self, esc_id: str, actor: str, text: str) -> dom.EscalationAudit:
        """Append a staff note to the audit trail (any listed staff member, any status)."""
        self._require(actor, clinician=False)
        now = self.clock.now()
        row = await self.db(
            lambda s: dom.add_note(s, esc_id, actor=actor, staff=self.everyone, note=text, now=now)
        )
        log.info("escalation %s: note added by %s", row.escalation_id, actor)
        return row

    async def list_escalations(
        self,
        *,
        status: Sequence[str] | None = None,
        severity: str | None = None,
        room_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Escalation]:
        return await self.db(
            lambda s: dom.list_escalations(
                s, status=status or None, severity=severity, room_id=room_id, limit=limit, offset=offset
            )
        )

    async def trail(self, esc_id: str) -> EscalationTrail:
        return await self.db(lambda s: dom.get_escalation_with_trail(s, esc_id))

    # --- the person's side and the staff room -----------------------------------------------

    async def resources_for(self, user: str, space: str | None) -> dict[str, Any]:
        """The resources message for ``user`` writing in ``space`` outside an escalation (a policy's
        ``send_resources``), for the region they would be offered (see ``bridge.regions``)."""
        region = await self.db(
            lambda s: region_for(s, user=user, space=space, default=self.cfg.default_region)
        )
        return render.member_resources_content(region, self.cfg.resources, theme=space)

    async def dm_room(self, user: str) -> RoomID:
        """The bot's 1:1 room with ``user`` (``m.direct``), created and remembered if missing; the
        member is (re-)invited if they are not in it. Also used for warnings and resources by
        ``bridge.actions``. Different members' rooms open concurrently (``bridge.direct_rooms``)."""
        return await self.direct_rooms.room_for(user)

    async def ensure_staff_room(self) -> RoomID:
        return await self.staff_room.ensure()

    async def handle_event(self, ev: TimelineEvent) -> None:
        """Bot handler: reactions on alerts and ``!`` commands in the staff room."""
        await self.commands.handle_event(ev)

    async def sweep(self) -> list[str]:
        return await self.timers.sweep()

    async def deliver_due(self) -> int:
        return await self.notifier.deliver_due()

    # --- health ----------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Notifier alive, pending outbox rows and the age of the oldest one (ok = notifier alive)."""
        alive = self.notifier.alive
        pending, age = await self.notifier.backlog()
        return {
            "ok": alive,
            "notifier_alive": alive,
            "pending": pending,
            "oldest_pending_age_seconds": round(age, 1) if age is not None else None,
            "staff_room": self.staff_room.room_id,
            "reload_error": self.reload_error,
            "reloads": self.reloads,
        }
