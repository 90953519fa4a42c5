"""The notifier: delivers the escalation outbox.

Staff notices (alerts, their status edits, re-pages, care-room reply pages) go to the staff room in
order, with each notification's ``txn_id`` so that a resend after a crash is deduplicated by the
homeserver. The person's crisis resources, the clinician's arrival in the care room and its closing,
and HMAC-signed webhook POSTs go in the background, at most ``BACKGROUND_DELIVERIES`` at once. Each
row is marked sent or failed (retried with backoff, never lost). The notifier is woken on every change
and also polls, so rows committed by anyone (another process, a test, a crash before the wake-up) are
delivered. Message text is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import Session, col, select

from bridge.clock import Clock
from bridge.db import DbLane
from bridge.direct_rooms import DirectRooms
from bridge.escalation import render, webhooks
from bridge.escalation.config import DeskConfig
from bridge.gateway import GatewayError, NioGateway
from bridge.staff_room import Names, StaffRoom
from bridge.tasks import TaskGroup
from config.ids import EventID, RoomID
from moderation import escalation as dom
from moderation.escalation import Escalation, Notification, NotificationKind, NotificationStatus, care
from spaces.care_room import care_scene_content
from spaces.models import ProvisionedRoom
from spaces.scene import SCENE_EVENT

log = logging.getLogger(__name__)

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


class DeliveryError(Exception):
    """A delivery attempt failed in a way worth retrying (the message goes to ``last_error``)."""


@dataclass(frozen=True)
class Work:
    """A pending notification and the current state of its escalation, read in one transaction."""

    notif: Notification
    esc: Escalation


class Notifier:
    def __init__(
        self,
        cfg: DeskConfig,
        db: DbLane,
        gateway: NioGateway,
        clock: Clock,
        tasks: TaskGroup,
        staff_room: StaffRoom,
        names: Names,
        direct_rooms: DirectRooms,
    ):
        self.cfg = cfg
        self.db = db
        self.gateway = gateway
        self.clock = clock
        self.tasks = tasks
        self.staff_room = staff_room
        self.names = names
        self.direct_rooms = direct_rooms
        self._wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._slots = asyncio.Semaphore(BACKGROUND_DELIVERIES)
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS)

    def start(self, logged_in: asyncio.Event) -> None:
        self._task = self.tasks.create(self._run(logged_in), name="escalation-notifier")

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        await self._http.aclose()

    def wake(self) -> None:
        """Tell the notifier that the outbox changed."""
        self._wake.set()

    async def _run(self, logged_in: asyncio.Event) -> None:
        await logged_in.wait()  # nothing is sent before the bot is logged in
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
                nxt = await self.db(dom.next_notification_at)
            except Exception:
                log.exception("escalation notifier: reading the outbox failed")
                nxt = None
            timeout = self.cfg.poll_seconds
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

        def read(s: Session) -> list[Work]:
            out = []
            for n in dom.pending_notifications(s, now):
                esc = s.get(Escalation, n.escalation_id)
                if esc is not None:
                    out.append(Work(n, esc))
            return out

        handled = 0
        for work in await self.db(read):
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

    def deliver_soon(self, work: Work) -> None:
        """Deliver a just-committed staff alert at once, unless the notifier has already taken it."""
        assert work.notif.id is not None
        if work.notif.id in self._inflight:
            return
        self._inflight.add(work.notif.id)
        self.tasks.create(self._deliver_then_wake(work), name=f"deliver-{work.notif.txn_id}")

    async def _deliver_then_wake(self, work: Work, *, in_slot: bool = False) -> None:
        """Deliver ``work`` (``in_slot``: within the BACKGROUND_DELIVERIES limit, for DMs and
        webhooks), then release it and wake the notifier."""
        try:
            async with self._slots if in_slot else contextlib.nullcontext():
                await self._deliver(work)
        finally:
            assert work.notif.id is not None
            self._inflight.discard(work.notif.id)
            self.wake()

    async def _deliver(self, work: Work) -> None:
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
            tuning = self.cfg.tuning
            retry = tuning.webhook_retry if kind is NotificationKind.WEBHOOK else tuning.staff_retry
            error = f"{type(e).__name__}: {e}"
            if isinstance(e, GatewayError | DeliveryError | httpx.HTTPError | TimeoutError | OSError):
                log.warning("escalation %s: %s %s failed: %s", esc.id, kind.value, n.txn_id, error)
            else:
                log.exception("escalation %s: %s %s failed", esc.id, kind.value, n.txn_id)
            now = self.clock.now()
            failed = await self.db(lambda s: dom.mark_failed(s, notif_id, error=error, now=now, retry=retry))
            if failed.status == NotificationStatus.FAILED.value:
                log.error("escalation %s: gave up on %s after %d attempts", esc.id, n.txn_id, failed.attempts)
            return
        now = self.clock.now()
        await self.db(lambda s: dom.mark_sent(s, notif_id, result_event_id=result, now=now))
        since = (now - n.created_at).total_seconds() * 1000
        log.info(
            "escalation %s: %s delivered (%s), %.0f ms after it was committed",
            esc.id,
            kind.value,
            result or n.txn_id,
            since,
        )

    # --- staff notices -------------------------------------------------------------------------

    def _render_args(self, esc: Escalation, room_name: str | None, member_name: str | None) -> dict[str, Any]:
        staff = self.cfg.staff
        names = dict(staff.display_names)
        if member_name and esc.sender not in names:  # staff are named by the staff file, not by themselves
            names[esc.sender] = member_name
        return {
            "room_name": room_name,
            "space_name": esc.space,
            "server_name": self.cfg.server_name,
            "tz": staff.rota.zone,
            "ack_hint": self.cfg.ack_reactions[0] if self.cfg.ack_reactions else "✅",
            "names": names,
        }

    async def _send_staff_notice(self, kind: NotificationKind, n: Notification, esc: Escalation) -> EventID:
        room = await self.staff_room.ensure()
        room_name, member_name = await asyncio.gather(
            self.names.room(esc.room_id), self.names.member(esc.room_id, esc.sender)
        )
        args = self._render_args(esc, room_name, member_name)
        mentions = list(n.payload.get("mentions") or [])
        if kind is NotificationKind.STAFF_ALERT:
            content = render.staff_alert_content(esc, mentions=mentions, **args)
        elif kind is NotificationKind.STAFF_UPDATE:
            if not esc.alert_event_id:
                raise DeliveryError("the alert this edit replaces has not been delivered yet")
            content = render.status_edit_content(
                esc, original_alert_event_id=esc.alert_event_id, mentions=mentions, **args
            )
        elif kind is NotificationKind.CARE_REPLY:
            content = render.care_reply_page_content(
                esc,
                mentions=mentions,
                names=args["names"],
                server_name=self.cfg.server_name,
                tz=self.cfg.staff.rota.zone,
            )
        else:
            content = render.repage_content(esc, mentions=mentions, reply_to=esc.alert_event_id, **args)
        return await self.gateway.send(room, content, "m.room.message", txn_id=n.txn_id)

    # --- the person: resources and the care room -----------------------------------------------

    async def _send_resources(self, n: Notification, esc: Escalation) -> EventID:
        user = str(n.payload["user_id"])
        room = await self.direct_rooms.room_for(user)
        content = render.member_resources_content(
            n.payload.get("locale"), self.cfg.resources, severity=esc.severity, theme=esc.space
        )
        event = await self.gateway.send(room, content, "m.room.message", txn_id=n.txn_id)
        await self.db(lambda s: care.set_care_room(s, esc.id, room))
        return event

    async def _care_room(self, esc: Escalation) -> RoomID:
        if esc.care_room_id:
            return RoomID(esc.care_room_id)
        room = await self.direct_rooms.room_for(esc.sender)
        await self.db(lambda s: care.set_care_room(s, esc.id, room))
        return room

    async def _join_care_room(self, n: Notification, esc: Escalation) -> EventID:
        """Invite the clinician who took the case into the person's care room, give the room its
        consultation-office scene, and tell the person gently who has joined and why."""
        clinician = str(n.payload["clinician"])
        room = await self._care_room(esc)
        member = await self.gateway.get_state_event(room, "m.room.member", clinician)
        if (member or {}).get("membership") not in ("join", "invite"):
            await self.gateway.invite(room, clinician)
        safe_place = await self.db(lambda s: _quiet_room_alias(s, esc.space))
        lines = self.cfg.resources.pinned_lines(esc.locale, esc.space)
        await self.gateway.put_state(room, SCENE_EVENT, care_scene_content(lines, safe_place))
        name = self.cfg.staff.display_names.get(clinician, clinician)
        return await self.gateway.send(
            room, render.care_join_content(name), "m.room.message", txn_id=n.txn_id
        )

    async def _close_care_room(self, n: Notification, esc: Escalation) -> EventID:
        room = await self._care_room(esc)
        by = str(n.payload.get("by") or esc.resolved_by or "")
        name = self.cfg.staff.display_names.get(by, "Hearth's care team")
        return await self.gateway.send(
            room, render.care_closed_content(name), "m.room.message", txn_id=n.txn_id
        )

    # --- webhooks ------------------------------------------------------------------------------

    async def _post_webhook(self, n: Notification) -> None:
        if not self.cfg.webhook_url:
            raise DeliveryError("no webhook_url is configured")
        body = webhooks.webhook_body(n)
        ts = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            dom.WEBHOOK_SIGNATURE_HEADER: webhooks.sign_webhook(self.cfg.webhook_secret, body, ts),
            "X-Hearth-Delivery": n.txn_id,
        }
        r = await self._http.post(self.cfg.webhook_url, content=body, headers=headers)
        if r.status_code >= 300:
            raise DeliveryError(f"webhook answered HTTP {r.status_code}")

    # --- health --------------------------------------------------------------------------------

    async def backlog(self) -> tuple[int, float | None]:
        """Pending outbox rows and the age in seconds of the oldest one."""

        def read(s: Session) -> tuple[int, datetime | None]:
            row = s.exec(
                select(func.count(), func.min(Notification.created_at)).where(
                    col(Notification.status) == NotificationStatus.PENDING.value
                )
            ).one()
            return int(row[0]), row[1]

        pending, oldest = await self.db(read)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return pending, (self.clock.now() - oldest).total_seconds() if oldest else None


def _quiet_room_alias(session: Session, space: str | None) -> str | None:
    """The alias of the person's space's quiet room (the care room's safe place), if it has one."""
    if not space:
        return None
    row = session.exec(
        select(ProvisionedRoom).where(ProvisionedRoom.space_slug == space, ProvisionedRoom.profile == "quiet")
    ).first()
    return row.alias if row else None
