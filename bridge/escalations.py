"""The escalation desk: the bridge side of crisis escalation (issue 5).

The domain (``moderation.escalation``) owns the state machine, the audit trail and the outbox; this
module drives it from the outside world:

- :meth:`EscalationDesk.raise_for` commits an escalation for a crisis message (retrying once as a
  merge when a concurrent insert for the same episode won) and wakes the notifier;
- the notifier task delivers pending outbox rows: staff notices with the notification's ``txn_id``
  (so a resend after a crash is deduplicated by the homeserver), the member's private resources
  message in a remembered 1:1 room (``m.direct``), and HMAC-signed webhook POSTs; it marks each sent
  or failed (with backoff). It is woken on every change and also polls, so rows committed by anyone
  (another process, a test, a crash before the wake-up) are delivered;
- the staff room ``#<alias>:<server>`` is resolved, or created invite-only and unencrypted with the
  staff invited at power level 50 (provisioning reconciles it by alias later);
- staff act by reaction on an alert or re-page, by ``!ack`` / ``!resolve`` / ``!note`` / ``!esc``
  commands in the staff room, or through the staff API; every change is committed, then the outbox
  carries the ``m.replace`` edit of the alert;
- SLAs: one APScheduler date job per active deadline (rebuilt from the database at start-up), plus a
  periodic sweep, both running :meth:`EscalationDesk.sweep`.

Only clinicians listed in the staff file may acknowledge or resolve (a volunteer moderator's ✅ must
not stop clinicians being re-paged); any listed staff member may read escalations and add notes.
Message text is never logged: logs carry escalation IDs, event IDs and notification kinds only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bridge.clock import Clock
from bridge.db import run_db
from bridge.direct_rooms import DirectRooms
from bridge.gateway import GatewayError, NioGateway, TimelineEvent
from bridge.regions import region_for
from bridge.scheduler import Scheduler
from bridge.tasks import TaskGroup
from config.ids import EventID, RoomID, UserID
from config.resources import CrisisResources, ResourceConfigError, load_crisis_resources
from config.settings import Settings, SettingsError
from moderation import care
from moderation import escalation as dom
from moderation.escalation import (
    ACTIVE_STATUSES,
    Escalation,
    EscalationError,
    EscalationSettings,
    EscalationTrail,
    IllegalTransition,
    Notification,
    NotificationKind,
    NotificationStatus,
    NotStaff,
    Outcome,
)
from moderation.types import Message, Signal
from spaces.care_room import care_scene_content
from spaces.models import ProvisionedRoom
from spaces.scene import SCENE_EVENT
from spaces.staff import DEFAULT_STAFF_FILE, Staff, StaffError, load_staff, on_call

log = logging.getLogger(__name__)

_ESC_ID = re.compile(r"^(?:[Ee]-)?[0-9A-Za-z]{6}$")

T = TypeVar("T")

STAFF_KINDS = frozenset(
    {
        NotificationKind.STAFF_ALERT,
        NotificationKind.STAFF_UPDATE,
        NotificationKind.REPAGE,
        NotificationKind.CARE_REPLY,
    }
)
BACKGROUND_DELIVERIES = 8  # member DMs and webhooks in flight at once (staff notices go in order, inline)
WEBHOOK_TIMEOUT_SECONDS = 10
COMMAND_HELP = (
    "Commands: !take <id> (join the person in their care room) · !ack <id> [note] · "
    "!resolve <id> <outcome> [note] · !note <id> <text> · !esc list. "
    "Outcomes: " + ", ".join(o.value for o in Outcome) + "."
)


class NotPermitted(NotStaff):
    """A listed staff member whose role does not allow the action (e.g. a moderator acknowledging)."""

    def __init__(self, actor: str, message: str) -> None:
        EscalationError.__init__(self, message)
        self.actor = actor


class DeliveryError(Exception):
    """A delivery attempt failed in a way worth retrying (the message goes to ``last_error``)."""


def load_tuning(path: Path, settings: Settings) -> EscalationSettings:
    """``config/escalation.toml`` with the per-tier SLA overrides from settings applied."""
    try:
        with path.open("rb") as f:
            tuning = EscalationSettings.model_validate(tomllib.load(f))
    except OSError as e:
        raise SettingsError(f"`escalation.tuning_file` {path}: cannot read ({e.strerror or e})") from None
    except (tomllib.TOMLDecodeError, ValidationError) as e:
        raise SettingsError(f"`escalation.tuning_file` {path}: {e}") from None
    cfg = settings.escalation
    overrides = {
        tier: seconds
        for tier, seconds in (
            ("imminent", cfg.sla_imminent_seconds),
            ("high", cfg.sla_high_seconds),
            ("moderate", cfg.sla_moderate_seconds),
        )
        if seconds is not None
    }
    if overrides:
        tuning = tuning.model_copy(update={"sla": tuning.sla.model_copy(update=overrides)})
    return tuning


def load_resources(settings: Settings) -> tuple[CrisisResources, str | None]:
    """The helpline catalogue and the operator's default region, checked against each other;
    :class:`SettingsError` names the setting and the problem."""
    cfg = settings.escalation
    try:
        resources = load_crisis_resources(cfg.resources_file)
    except ResourceConfigError as e:
        raise SettingsError(f"`escalation.resources_file`: {e}") from None
    region = cfg.default_region or None
    if region and resources.known(region) != region:
        raise SettingsError(
            f"`escalation.default_region`: {region!r} has no lines in {cfg.resources_file}: "
            f"use one of {resources.codes}, or leave it empty"
        )
    return resources, region


@dataclass(frozen=True)
class _Work:
    """A pending notification and the current state of its escalation, read in one transaction."""

    notif: Notification
    esc: Escalation


class EscalationDesk:
    """Raises escalations, delivers the outbox, takes acknowledgements and keeps the SLA timers."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        gateway: NioGateway,
        scheduler: Scheduler,
        clock: Clock,
        tasks: TaskGroup,
    ):
        cfg = settings.escalation
        self.engine = engine
        self.gateway = gateway
        self.scheduler = scheduler
        self.clock = clock
        self.tasks = tasks
        # Set by the service once the bot is logged in: nothing is sent before that.
        self.logged_in = asyncio.Event()
        self.server_name = settings.matrix.server_name
        self.alias = f"#{cfg.staff_room_alias}:{self.server_name}"
        self.sweep_seconds = cfg.sweep_seconds
        self.poll_seconds = cfg.poll_seconds
        staff_file = cfg.staff_file or DEFAULT_STAFF_FILE
        try:
            self.staff: Staff = load_staff(staff_file)
        except StaffError as e:
            raise SettingsError(f"`escalation.staff_file`: {e}") from None
        self.resources, self.default_region = load_resources(settings)
        self.tuning = load_tuning(cfg.tuning_file, settings)
        self.ack_reactions = tuple(
            dict.fromkeys([*self.tuning.ack_reactions, *self.staff.acknowledge.reactions])
        )
        self.webhook_url = cfg.webhook_url
        self.webhook_secret = cfg.webhook_secret.get_secret_value().encode() if cfg.webhook_secret else b""
        self.clinicians: frozenset[str] = frozenset(self.staff.clinician_ids)
        self.everyone: frozenset[str] = frozenset(self.staff.all_ids)

        self._wake = asyncio.Event()
        self._staff_room: RoomID | None = None
        self._staff_room_lock = asyncio.Lock()
        self.direct_rooms = DirectRooms(gateway, pool_size=cfg.care_room_pool)
        self._sweep_lock = asyncio.Lock()
        self._inflight: set[int] = set()
        self._slots = asyncio.Semaphore(BACKGROUND_DELIVERIES)
        self._room_names: dict[str, str | None] = {}
        self._member_names: dict[tuple[str, str], str | None] = {}
        self._notifier: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS)
        self._db_lane = ThreadPoolExecutor(max_workers=2, thread_name_prefix="escalation-db")

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url)

    @property
    def staff_room_id(self) -> RoomID | None:
        return self._staff_room

    def start(self) -> None:
        """Start the notifier and the SLA timers (call after the scheduler has started)."""
        self._notifier = self.tasks.create(self._run_notifier(), name="escalation-notifier")
        self.tasks.create(self._rebuild_timers(), name="escalation-timers")
        self.tasks.create(self._prepare_staff_room(), name="escalation-staff-room")
        self.tasks.create(self._keep_rooms_ready(), name="escalation-room-pool")
        self.scheduler.aps.add_job(
            self.sweep,
            "interval",
            seconds=self.sweep_seconds,
            id="escalation-sweep",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    async def close(self) -> None:
        await self._http.aclose()
        self._db_lane.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Tell the notifier that the outbox changed."""
        self._wake.set()

    async def _db(self, fn: Callable[[Session], T]) -> T:
        # A lane of its own: an escalation's commit never queues behind the default thread pool's
        # screening work (decisions, the bot's ledger), which is busiest exactly when a crisis comes.
        return await run_db(self.engine, fn, self._db_lane)

    # --- raising ---------------------------------------------------------------------------

    async def raise_for(
        self,
        message: Message,
        tier: str,
        category: str,
        signals: Sequence[Signal],
        excerpt: str,
        locale: str | None = None,
    ) -> Escalation:
        """Commit an escalation (or merge into the sender's active one in that room) for a crisis
        message, then wake the notifier. Returns the escalation as committed."""
        now = self.clock.now()
        paged = on_call(self.staff.rota, now)

        def work(s: Session) -> tuple[Escalation, bool, list[_Work]]:
            # The person's help is for where they are: their own choice, the space's, the operator's.
            where = locale or region_for(
                s, user=message.sender, space=message.space, default=self.default_region
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
                sla=self.tuning.sla,
                on_call=paged,
                webhook=self.webhook_enabled,
            )
            alerts = (
                [
                    _Work(n, esc)
                    for n in dom.pending_notifications(s, now, escalation_id=esc.id)
                    if n.kind == NotificationKind.STAFF_ALERT.value
                ]
                if created
                else []
            )
            return esc, created, alerts

        try:
            esc, created, alerts = await self._db(work)
        except IntegrityError:
            # A concurrent raise for the same episode committed first: this one merges into it.
            esc, created, alerts = await self._db(work)
        log.info(
            "escalation %s %s for event %s (%s, %s)",
            esc.id,
            "opened" if created else "updated",
            message.event_id,
            esc.severity,
            esc.category,
        )
        self._schedule_deadline(esc.id, esc.sla_deadline)
        if alerts and self.logged_in.is_set():
            # The committed alert goes out now, not on the notifier's next pass; the notifier is woken
            # when it has gone, so the person's resources (a new DM room: Synapse's heaviest request)
            # follow it rather than compete with it. Any failure leaves it in the outbox for retry.
            for alert in alerts:
                self._deliver_soon(alert)
        else:
            self.wake()
        return esc

    # --- acting (reactions, commands and the API all come here) ------------------------------

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
        esc = await self._db(
            lambda s: dom.acknowledge(
                s,
                esc_id,
                actor=actor,
                staff=self.clinicians,
                now=now,
                note=note,
                webhook=self.webhook_enabled,
            )
        )
        log.info("escalation %s acknowledged by %s", esc.id, actor)
        self._unschedule(esc.id)
        self.wake()
        return esc

    async def take(self, esc_id: str, actor: str, *, anyway: bool = False) -> Escalation:
        """A clinician takes the case into the person's care room (acknowledging it if needed)."""
        self._require(actor, clinician=True)
        now = self.clock.now()
        esc = await self._db(
            lambda s: care.take(s, esc_id, actor=actor, clinicians=self.clinicians, now=now, anyway=anyway)
        )
        log.info("escalation %s taken by %s", esc.id, actor)
        self._unschedule(esc.id)
        self.wake()
        return esc

    async def care_message(self, user: str, room: str, event_id: str) -> Escalation | None:
        """The person wrote in their care room: attach it to their active case (re-paging the on-call
        clinician while nobody has taken it). None when they have no active case."""
        now = self.clock.now()
        paged = on_call(self.staff.rota, now)

        def work(s: Session) -> Escalation | None:
            esc = care.active_case(s, user, room)
            if esc is None:
                return None
            care.member_replied(s, esc.id, event_id=event_id, room_id=room, now=now, on_call=paged)
            return esc

        esc = await self._db(work)
        if esc is not None:
            self.wake()
        return esc

    async def leave_alone(self, user: str, room: str) -> Escalation | None:
        """The person asked to be left alone (``!alone``); None when they have no active case."""
        now = self.clock.now()

        def work(s: Session) -> Escalation | None:
            esc = care.active_case(s, user, room)
            return care.leave_alone(s, esc.id, now=now) if esc is not None else None

        esc = await self._db(work)
        if esc is not None:
            self.wake()
        return esc

    async def resolve(self, esc_id: str, actor: str, outcome: str, note: str | None = None) -> Escalation:
        """Close the escalation with an outcome (ValueError names the valid ones)."""
        self._require(actor, clinician=True)
        parsed = dom.parse_outcome(outcome)
        now = self.clock.now()
        retention = timedelta(days=self.tuning.excerpt_retention_days)
        esc = await self._db(
            lambda s: dom.resolve(
                s,
                esc_id,
                actor=actor,
                staff=self.clinicians,
                outcome=parsed,
                now=now,
                note=note,
                webhook=self.webhook_enabled,
                excerpt_retention=retention,
            )
        )
        log.info("escalation %s resolved by %s (%s)", esc.id, actor, parsed.value)
        self._unschedule(esc.id)
        self.wake()
        return esc

    async def add_note(self, esc_id: str, actor: str, text: str) -> dom.EscalationAudit:
        """Append a staff note to the audit trail (any listed staff member, any status)."""
        self._require(actor, clinician=False)
        now = self.clock.now()
        row = await self._db(
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
        return await self._db(
            lambda s: dom.list_escalations(
                s, status=status or None, severity=severity, room_id=room_id, limit=limit, offset=offset
            )
        )

    async def trail(self, esc_id: str) -> EscalationTrail:
        return await self._db(lambda s: dom.get_escalation_with_trail(s, esc_id))

    # --- SLA timers ------------------------------------------------------------------------

    def _schedule_deadline(self, esc_id: str, deadline: datetime) -> None:
        if not self.scheduler.aps.running:
            return  # start() rebuilds every timer from the database
        self.scheduler.aps.add_job(
            self.sweep,
            "date",
            run_date=deadline,
            id=f"sla:{esc_id}",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def _unschedule(self, esc_id: str) -> None:
        if self.scheduler.aps.running:
            with contextlib.suppress(Exception):  # JobLookupError: the timer already ran or never existed
                self.scheduler.aps.remove_job(f"sla:{esc_id}")

    async def _rebuild_timers(self) -> None:
        deadlines = await self._db(dom.active_deadlines)
        for esc_id, deadline in deadlines:
            self._schedule_deadline(esc_id, deadline)
        log.info("escalation timers rebuilt: %d active deadline(s)", len(deadlines))
        await self.sweep()

    def backup_rota(self, now: datetime) -> list[UserID]:
        """Who a re-page mentions: the on-call clinicians and the rota's fallback (the domain adds
        every clinician for imminent)."""
        return list(
            dict.fromkeys([*on_call(self.staff.rota, now), *(UserID(u) for u in self.staff.rota.fallback)])
        )

    async def sweep(self) -> list[str]:
        """Re-page every unacknowledged escalation past its SLA; returns their IDs."""
        async with self._sweep_lock:
            now = self.clock.now()
            backup = self.backup_rota(now)
            clinicians = self.staff.clinician_ids

            def work(s: Session) -> list[tuple[str, datetime, int]]:
                done = []
                for esc in dom.due_for_repage(s, now):
                    try:
                        dom.repage(
                            s,
                            esc.id,
                            now=now,
                            sla=self.tuning.sla,
                            backup=backup,
                            clinicians=clinicians,
                            webhook=self.webhook_enabled,
                        )
                    except IllegalTransition:
                        continue  # acknowledged meanwhile, or a stale timer
                    done.append((esc.id, esc.sla_deadline, esc.repage_count))
                return done

            repaged = await self._db(work)
        for esc_id, deadline, count in repaged:
            log.warning("escalation %s passed its SLA unacknowledged: re-page #%d", esc_id, count)
            self._schedule_deadline(esc_id, deadline)
        if repaged:
            self.wake()
        return [r[0] for r in repaged]

    # --- the notifier ----------------------------------------------------------------------

    async def _run_notifier(self) -> None:
        await self.logged_in.wait()
        log.info("escalation notifier running")
        while True:
            self._wake.clear()
            try:
                delivered = await self.deliver_due()
            except Exception:
                log.exception("escalation notifier: reading the outbox failed")
                delivered = 0
            if delivered:
                continue  # a delivered alert may release its held status edits
            try:
                nxt = await self._db(dom.next_notification_at)
            except Exception:
                log.exception("escalation notifier: reading the outbox failed")
                nxt = None
            timeout = self.poll_seconds
            if nxt is not None:
                wait = (nxt - self.clock.now()).total_seconds()
                if wait > 0:
                    timeout = min(timeout, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def deliver_due(self) -> int:
        """Deliver what is due: staff notices in order, here; DMs and webhooks in the background.
        Returns how many staff notices were handled."""
        now = self.clock.now()

        def read(s: Session) -> list[_Work]:
            out = []
            for n in dom.pending_notifications(s, now):
                esc = s.get(Escalation, n.escalation_id)
                if esc is not None:
                    out.append(_Work(n, esc))
            return out

        handled = 0
        for work in await self._db(read):
            n = work.notif
            assert n.id is not None
            if n.id in self._inflight:
                continue
            self._inflight.add(n.id)
            if NotificationKind(n.kind) in STAFF_KINDS:
                try:
                    await self._deliver(work)
                finally:
                    self._inflight.discard(n.id)
                handled += 1
            else:
                self.tasks.create(self._deliver_then_wake(work, in_slot=True), name=f"deliver-{n.txn_id}")
        return handled

    def _deliver_soon(self, work: _Work) -> None:
        """Deliver a just-committed staff alert at once, unless the notifier has already taken it."""
        assert work.notif.id is not None
        if work.notif.id in self._inflight:
            return
        self._inflight.add(work.notif.id)
        self.tasks.create(self._deliver_then_wake(work), name=f"deliver-{work.notif.txn_id}")

    async def _deliver_then_wake(self, work: _Work, *, in_slot: bool = False) -> None:
        """Deliver ``work`` (``in_slot``: within the BACKGROUND_DELIVERIES limit, for DMs and
        webhooks), then release it and wake the notifier."""
        try:
            async with self._slots if in_slot else contextlib.nullcontext():
                await self._deliver(work)
        finally:
            assert work.notif.id is not None
            self._inflight.discard(work.notif.id)
            self.wake()

    async def _deliver(self, work: _Work) -> None:
        n, esc = work.notif, work.esc
        kind = NotificationKind(n.kind)
        assert n.id is not None
        notif_id = n.id
        try:
            if kind in STAFF_KINDS:
                result: str | None = await self._send_staff_notice(kind, n, esc)
            elif kind is NotificationKind.MEMBER_RESOURCES:
                result = await self._send_resources(n, esc)
            elif kind is NotificationKind.CARE_JOIN:
                result = await self._join_care_room(n, esc)
            elif kind is NotificationKind.CARE_CLOSED:
                result = await self._close_care_room(n, esc)
            else:
                await self._post_webhook(n)
                result = None
        except asyncio.CancelledError:
            raise
        except Exception as e:  # any failure is retried with backoff, never lost
            retry = self.tuning.webhook_retry if kind is NotificationKind.WEBHOOK else self.tuning.staff_retry
            error = f"{type(e).__name__}: {e}"
            if isinstance(e, GatewayError | DeliveryError | httpx.HTTPError | TimeoutError | OSError):
                log.warning("escalation %s: %s %s failed: %s", esc.id, kind.value, n.txn_id, error)
            else:
                log.exception("escalation %s: %s %s failed", esc.id, kind.value, n.txn_id)
            now = self.clock.now()
            failed = await self._db(lambda s: dom.mark_failed(s, notif_id, error=error, now=now, retry=retry))
            if failed.status == NotificationStatus.FAILED.value:
                log.error("escalation %s: gave up on %s after %d attempts", esc.id, n.txn_id, failed.attempts)
            return
        now = self.clock.now()
        await self._db(lambda s: dom.mark_sent(s, notif_id, result_event_id=result, now=now))
        since = (now - n.created_at).total_seconds() * 1000
        log.info(
            "escalation %s: %s delivered (%s), %.0f ms after it was committed",
            esc.id,
            kind.value,
            result or n.txn_id,
            since,
        )

    def _render_args(self, esc: Escalation, room_name: str | None, member_name: str | None) -> dict[str, Any]:
        names = dict(self.staff.display_names)
        if member_name and esc.sender not in names:  # staff are named by the staff file, not by themselves
            names[esc.sender] = member_name
        return {
            "room_name": room_name,
            "space_name": esc.space,
            "server_name": self.server_name,
            "tz": self.staff.rota.zone,
            "ack_hint": self.ack_reactions[0] if self.ack_reactions else "✅",
            "names": names,
        }

    async def _send_staff_notice(self, kind: NotificationKind, n: Notification, esc: Escalation) -> EventID:
        room = await self.ensure_staff_room()
        room_name, member_name = await asyncio.gather(
            self._room_name(esc.room_id), self._member_name(esc.room_id, esc.sender)
        )
        args = self._render_args(esc, room_name, member_name)
        mentions = list(n.payload.get("mentions") or [])
        if kind is NotificationKind.STAFF_ALERT:
            content = dom.staff_alert_content(esc, mentions=mentions, **args)
        elif kind is NotificationKind.STAFF_UPDATE:
            if not esc.alert_event_id:
                raise DeliveryError("the alert this edit replaces has not been delivered yet")
            content = dom.status_edit_content(
                esc, original_alert_event_id=esc.alert_event_id, mentions=mentions, **args
            )
        elif kind is NotificationKind.CARE_REPLY:
            content = care.care_reply_page_content(
                esc,
                mentions=mentions,
                names=args["names"],
                server_name=self.server_name,
                tz=self.staff.rota.zone,
            )
        else:
            content = dom.repage_content(esc, mentions=mentions, reply_to=esc.alert_event_id, **args)
        return await self.gateway.send(room, content, "m.room.message", txn_id=n.txn_id)

    async def _room_name(self, room_id: str) -> str | None:
        if room_id not in self._room_names:
            try:
                state = await asyncio.wait_for(self.gateway.get_state_event(room_id, "m.room.name"), 2)
                name = state.get("name") if state else None
                self._room_names[room_id] = str(name) if name else None
            except (GatewayError, TimeoutError, httpx.HTTPError):
                return None  # not cached: try again next time
        return self._room_names[room_id]

    async def _member_name(self, room_id: str, user: str) -> str | None:
        """The member's display name in that room (their ``m.room.member`` state), cached; None when
        they have none or the homeserver does not answer within 2 s (the alert never waits longer)."""
        key = (room_id, user)
        if key not in self._member_names:
            try:
                state = await asyncio.wait_for(
                    self.gateway.get_state_event(room_id, "m.room.member", user), 2
                )
                name = state.get("displayname") if state else None
                self._member_names[key] = str(name).strip()[:100] or None if name else None
            except (GatewayError, TimeoutError, httpx.HTTPError):
                return None  # not cached: try again next time
        return self._member_names[key]

    async def _send_resources(self, n: Notification, esc: Escalation) -> EventID:
        user = str(n.payload["user_id"])
        room = await self.dm_room(user)
        content = dom.member_resources_content(
            n.payload.get("locale"), self.resources, severity=esc.severity, theme=esc.space
        )
        event = await self.gateway.send(room, content, "m.room.message", txn_id=n.txn_id)
        await self._db(lambda s: care.set_care_room(s, esc.id, room))
        return event

    async def _care_room(self, esc: Escalation) -> RoomID:
        if esc.care_room_id:
            return RoomID(esc.care_room_id)
        room = await self.dm_room(esc.sender)
        await self._db(lambda s: care.set_care_room(s, esc.id, room))
        return room

    async def _join_care_room(self, n: Notification, esc: Escalation) -> EventID:
        """Invite the clinician who took the case into the person's care room, give the room its
        consultation-office scene, and tell the person gently who has joined and why."""
        clinician = str(n.payload["clinician"])
        room = await self._care_room(esc)
        member = await self.gateway.get_state_event(room, "m.room.member", clinician)
        if (member or {}).get("membership") not in ("join", "invite"):
            await self.gateway.invite(room, clinician)
        safe_place = await self._db(lambda s: _quiet_room_alias(s, esc.space))
        lines = self.resources.pinned_lines(esc.locale, esc.space)
        await self.gateway.put_state(room, SCENE_EVENT, care_scene_content(lines, safe_place))
        name = self.staff.display_names.get(clinician, clinician)
        return await self.gateway.send(room, care.care_join_content(name), "m.room.message", txn_id=n.txn_id)

    async def _close_care_room(self, n: Notification, esc: Escalation) -> EventID:
        room = await self._care_room(esc)
        by = str(n.payload.get("by") or esc.resolved_by or "")
        name = self.staff.display_names.get(by, "Hearth's care team")
        return await self.gateway.send(
            room, care.care_closed_content(name), "m.room.message", txn_id=n.txn_id
        )

    async def resources_for(self, user: str, space: str | None) -> dict[str, Any]:
        """The resources message for ``user`` writing in ``space`` outside an escalation (a policy's
        ``send_resources``), for the region they would be offered (see ``bridge.regions``)."""
        region = await self._db(lambda s: region_for(s, user=user, space=space, default=self.default_region))
        return dom.member_resources_content(region, self.resources, theme=space)

    async def _post_webhook(self, n: Notification) -> None:
        if not self.webhook_url:
            raise DeliveryError("no webhook_url is configured")
        body = dom.webhook_body(n)
        ts = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            dom.WEBHOOK_SIGNATURE_HEADER: dom.sign_webhook(self.webhook_secret, body, ts),
            "X-Hearth-Delivery": n.txn_id,
        }
        r = await self._http.post(self.webhook_url, content=body, headers=headers)
        if r.status_code >= 300:
            raise DeliveryError(f"webhook answered HTTP {r.status_code}")

    # --- rooms -----------------------------------------------------------------------------

    async def _keep_rooms_ready(self) -> None:
        await self.logged_in.wait()
        await self.direct_rooms.keep_pool_filled()

    async def _prepare_staff_room(self) -> None:
        await self.logged_in.wait()
        delay = 0.5
        while True:
            try:
                await self.ensure_staff_room()
                return
            except (GatewayError, TimeoutError, OSError) as e:
                log.warning("staff room %s not ready (%s); retrying in %.1fs", self.alias, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    async def ensure_staff_room(self) -> RoomID:
        """The staff room's ID: resolved by alias (and joined), or created invite-only and unencrypted
        with every staff member invited at power level 50."""
        if self._staff_room is not None:
            return self._staff_room
        async with self._staff_room_lock:
            if self._staff_room is not None:
                return self._staff_room
            room = await self.gateway.resolve_alias(self.alias)
            if room is None:
                localpart = self.alias[1:].split(":", 1)[0]
                try:
                    room = await self.gateway.create_private_room(
                        name="Hearth staff",
                        alias=localpart,
                        topic="Crisis escalations. React ✅ or send !ack <id> to acknowledge; !esc list; !esc help.",
                        power_users=dict.fromkeys(self.staff.all_ids, 50),
                    )
                    log.info("created the staff room %s (%s)", self.alias, room)
                except GatewayError as e:
                    if e.errcode != "M_ROOM_IN_USE":
                        raise
                    room = await self.gateway.resolve_alias(self.alias)  # created concurrently
                    if room is None:
                        raise
            else:
                await self.gateway.join(room)
            if await self.gateway.get_state_event(room, "m.room.encryption") is not None:
                log.error("staff room %s is encrypted: the bot cannot post readable alerts there", self.alias)
            await self._invite_missing_staff(room)
            self._staff_room = room
            return room

    async def _invite_missing_staff(self, room: RoomID) -> None:
        for user in self.staff.all_ids:
            try:
                member = await self.gateway.get_state_event(room, "m.room.member", user)
                if member and member.get("membership") in ("join", "invite", "ban"):
                    continue
                await self.gateway.invite(room, user)
            except GatewayError as e:  # e.g. an account not registered yet: provisioning reconciles later
                log.warning("could not invite %s to the staff room: %s", user, e)

    async def dm_room(self, user: str) -> RoomID:
        """The bot's 1:1 room with ``user`` (``m.direct``), created and remembered if missing; the
        member is (re-)invited if they are not in it. Also used for warnings and resources by
        ``bridge.actions``. Different members' rooms open concurrently (``bridge.direct_rooms``)."""
        return await self.direct_rooms.room_for(user)

    async def staff_notice(self, text: str) -> None:
        """A plain ``m.notice`` in the staff room (e.g. a message flagged for review). Best effort:
        failures are logged, not retried; escalations go through the outbox instead."""
        try:
            room = await self.ensure_staff_room()
            await self.gateway.send(room, {"msgtype": "m.notice", "body": text, "m.mentions": {}})
        except (GatewayError, TimeoutError, OSError) as e:
            log.warning("could not post a notice in the staff room: %s", e)

    # --- staff-room events -----------------------------------------------------------------

    async def handle_event(self, ev: TimelineEvent) -> None:
        """Bot handler: reactions on alerts and ``!`` commands in the staff room."""
        if ev.sender == self.gateway.user_id or ev.type not in ("m.reaction", "m.room.message"):
            return
        content = ev.event.get("content") or {}
        if self._staff_room is None and (
            ev.type == "m.reaction" or str(content.get("body", "")).startswith("!")
        ):
            with contextlib.suppress(GatewayError, TimeoutError, OSError):
                await asyncio.wait_for(self.ensure_staff_room(), 10)  # events of the first sync after start
        if self._staff_room is None or ev.room_id != self._staff_room:
            return
        if ev.type == "m.reaction":
            await self._on_reaction(ev, content)
            return
        body = content.get("body")
        if not isinstance(body, str):
            return
        text = _strip_reply_fallback(body).strip()
        if text.startswith("!"):
            await self._on_command(ev, text, content)

    async def _reply(self, ev: TimelineEvent, text: str) -> None:
        content = {
            "msgtype": "m.notice",
            "body": text,
            "m.mentions": {"user_ids": [ev.sender]},
            "m.relates_to": {"m.in_reply_to": {"event_id": ev.event_id}},
        }
        try:
            await self.gateway.send(ev.room_id, content, txn_id=f"hearth.reply.{ev.event_id}")
        except GatewayError as e:
            log.warning("could not reply to %s: %s", ev.event_id, e)

    async def _on_reaction(self, ev: TimelineEvent, content: dict[str, Any]) -> None:
        rel = content.get("m.relates_to") or {}
        key, target = rel.get("key"), rel.get("event_id")
        if rel.get("rel_type") != "m.annotation" or not isinstance(key, str) or not isinstance(target, str):
            return
        if not dom.is_ack_reaction(key, self.ack_reactions):
            return
        esc = await self._db(lambda s: dom.find_by_notice_event(s, target))
        if esc is None:
            return
        try:
            await self.acknowledge(esc.id, ev.sender, note=f"reaction {key} ({ev.event_id})")
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
            self.require_staff(ev.sender)
            if cmd == "!esc":
                await self._reply(ev, await self._esc_command(rest))
                return
            esc_id, _, rest = rest.partition(" ")
            rest = rest.strip()
            if not _ESC_ID.match(esc_id):
                # `!ack` sent as a reply to an alert may omit the ID.
                replied = ((content.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id")
                found = await self._db(lambda s: dom.find_by_notice_event(s, replied)) if replied else None
                if found is None:
                    await self._reply(ev, f"Which escalation? {COMMAND_HELP}")
                    return
                rest = f"{esc_id} {rest}".strip()
                esc_id = found.id
            if cmd == "!take":
                esc = await self.take(esc_id, ev.sender, anyway=rest.lower() == "anyway")
                await self._reply(
                    ev,
                    f"{esc.id}: you're being invited to {self._member_label(esc)}'s care room; "
                    "they will be told gently that you have joined.",
                )
            elif cmd == "!ack":
                esc = await self.acknowledge(esc_id, ev.sender, note=rest or None)
                await self._reply(ev, f"{esc.id} acknowledged by {self._who(ev.sender)}.")
            elif cmd == "!resolve":
                outcome, _, note = rest.partition(" ")
                if not outcome:
                    await self._reply(
                        ev, f"Say how it ended: !resolve {esc_id} <outcome> [note]. {COMMAND_HELP}"
                    )
                    return
                esc = await self.resolve(esc_id, ev.sender, outcome, note.strip() or None)
                label = dom.OUTCOME_LABELS.get(Outcome(esc.outcome or Outcome.OTHER), esc.outcome)
                await self._reply(ev, f"{esc.id} resolved by {self._who(ev.sender)}: {label}.")
            else:
                if not rest:
                    await self._reply(ev, f"A note needs text: !note {esc_id} <text>.")
                    return
                row = await self.add_note(esc_id, ev.sender, rest)
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
        active = await self.list_escalations(status=[s.value for s in ACTIVE_STATUSES], limit=20)
        if not active:
            return "No active escalations."
        now = self.clock.now()
        lines = [f"{len(active)} active escalation(s), newest first:"]
        for esc in active:
            age = int((now - esc.created_at).total_seconds() // 60)
            who = f" by {self._who(esc.acknowledged_by)}" if esc.acknowledged_by else ""
            where = self._room_names.get(esc.room_id) or esc.room_id
            member = dom.person(
                esc.sender, {esc.sender: self._member_names.get((esc.room_id, esc.sender)) or ""}
            )
            lines.append(
                f"• {esc.id} {esc.severity}, {dom.category_words(esc.category)}: {esc.status}{who}, "
                f"{age} min ago, {member} in {where}"
            )
        return "\n".join(lines)

    def _member_label(self, esc: Escalation) -> str:
        return self._member_names.get((esc.room_id, esc.sender)) or esc.sender

    def _who(self, user: str) -> str:
        return dom.person(user, self.staff.display_names)

    # --- health ----------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Notifier alive, pending outbox rows and the age of the oldest one (ok = notifier alive)."""
        alive = self._notifier is not None and not self._notifier.done()

        def read(s: Session) -> tuple[int, datetime | None]:
            row = s.exec(
                select(func.count(), func.min(Notification.created_at)).where(
                    col(Notification.status) == NotificationStatus.PENDING.value
                )
            ).one()
            return int(row[0]), row[1]

        pending, oldest = await self._db(read)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = (self.clock.now() - oldest).total_seconds() if oldest else None
        return {
            "ok": alive,
            "notifier_alive": alive,
            "pending": pending,
            "oldest_pending_age_seconds": round(age, 1) if age is not None else None,
            "staff_room": self._staff_room,
        }


def _strip_reply_fallback(body: str) -> str:
    """Drop a rich reply's quoted fallback (``> <@user> ...`` lines and the blank line after)."""
    lines = body.splitlines()
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).lstrip("\n")


def _quiet_room_alias(session: Session, space: str | None) -> str | None:
    """The alias of the person's space's quiet room (the care room's safe place), if it has one."""
    if not space:
        return None
    row = session.exec(
        select(ProvisionedRoom).where(ProvisionedRoom.space_slug == space, ProvisionedRoom.profile == "quiet")
    ).first()
    return row.alias if row else None
