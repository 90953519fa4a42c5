"""Crisis escalation, the domain: a pure state machine, its tables and a transactional notification outbox.

A crisis signal becomes an :class:`Escalation` (one per person per room per *episode*: further
messages from the same person in the same room while one is active are merged into it, with their
evidence attached). Its lifecycle::

    open ──► acknowledged ──► resolved(outcome)
      │            ▲
      └─► repaged ─┘   (repaged ─► repaged again while the SLA keeps passing unacknowledged)

``resolved`` is terminal. Resolving an ``open``/``repaged`` escalation acknowledges it first (two
audit rows), so a clinician can close a false alarm in one step. ``merged`` is an audited event,
not a status: the merged-into escalation keeps its status.

Every function that changes state takes a ``Session`` and ``now`` and works inside the caller's
transaction: it appends audit rows and enqueues :class:`Notification` outbox rows in the same
transaction, and never commits. The bridge commits, *then* a notifier delivers the pending
notifications and marks them sent, so a crash between any two steps loses nothing; a resend after a
crash reuses the notification's deterministic ``txn_id``, which the homeserver deduplicates.

Nothing here reads the clock or the environment or imports nio/FastAPI/APScheduler (the import
contract in ``pyproject.toml``, checked by ``make lint``, keeps it so). The package, by job:

- ``types``: severities (ranked with every other tier by ``moderation.types.tier_rank``), statuses,
  outcomes, notification kinds, errors, the SLA and retry policies;
- ``tables``: the case, its evidence, its append-only audit and the notification outbox;
- ``lifecycle``: raising (and merging), acknowledging, resolving, notes: the transitions;
- ``sla``: what is overdue, the deadlines to time, re-paging;
- ``store``: ids, audit and outbox writes, delivery bookkeeping, lookups, the excerpt purge;
- ``care``: from alert to conversation: the care room, taking a case, replies, being left alone;
- ``stats``: the dashboard's figures (queue, escalations per day, time to acknowledge);
- ``port``: the one typed entry point screening and actions call (``EscalationPort``).

The bridge side is ``bridge/escalation/``: the desk (implements the port), the notifier, the staff
room, commands, SLA timers, alert rendering and webhook signing.

Bridge recipe (one transaction each, e.g. through ``bridge.db.run_db``)::

    esc, created = raise_escalation(s, room_id=..., sender=..., event_id=..., severity="imminent",
                                    category="plan", signals=verdict.signals, excerpt=body,
                                    space="grief", locale=None, now=now, sla=sla,
                                    on_call=on_call(rota, now), webhook=bool(settings.webhook_url))
    # commit; then poke the notifier.
    for n in pending_notifications(s, now):          # notifier loop
        esc = s.get(Escalation, n.escalation_id)
        kind staff_alert      -> send render.staff_alert_content(esc, mentions=n.payload["mentions"], ...)
                                 to the staff room with txn_id=n.txn_id
        kind staff_update     -> send render.status_edit_content(esc, original_alert_event_id=esc.alert_event_id,
                                 mentions=n.payload["mentions"], ...)
        kind repage           -> send render.repage_content(esc, mentions=n.payload["mentions"],
                                 reply_to=esc.alert_event_id, ...)
        kind member_resources -> DM n.payload["user_id"] with
                                 render.member_resources_content(n.payload["locale"], catalog)
        kind webhook          -> POST webhooks.webhook_body(n) with header
                                 {WEBHOOK_SIGNATURE_HEADER: webhooks.sign_webhook(secret, body, int(ts))}
        then mark_sent(s, n.id, result_event_id=..., now=now)   (or mark_failed(..., retry=...))
    for esc in due_for_repage(s, now): repage(s, esc.id, now=now, sla=sla, backup=..., clinicians=...)
"""

from __future__ import annotations

from moderation.escalation.lifecycle import (
    acknowledge,
    add_note,
    check_transition,
    parse_outcome,
    raise_escalation,
    resolve,
)
from moderation.escalation.port import EscalationPort
from moderation.escalation.sla import active_deadlines, due_for_repage, repage
from moderation.escalation.store import (
    find_by_notice_event,
    get_escalation,
    get_escalation_with_trail,
    list_escalations,
    mark_failed,
    mark_sent,
    next_notification_at,
    normalize_escalation_id,
    pending_notifications,
    purge_excerpts,
)
from moderation.escalation.tables import (
    Escalation,
    EscalationAudit,
    EscalationEvidence,
    EscalationTrail,
    Notification,
    UTCDateTime,
    escalation_summary,
)
from moderation.escalation.types import (
    ACTIVE_STATUSES,
    OUTCOME_LABELS,
    SYSTEM_ACTOR,
    UNACKNOWLEDGED_STATUSES,
    WEBHOOK_SIGNATURE_HEADER,
    AuditImmutable,
    EscalationError,
    EscalationNotFound,
    EscalationSettings,
    IllegalTransition,
    NotificationKind,
    NotificationStatus,
    NotStaff,
    Outcome,
    RetryPolicy,
    Severity,
    SlaPolicy,
    Status,
    as_utc,
    format_time,
    is_ack_reaction,
)

__all__ = [
    "EscalationPort",
    "ACTIVE_STATUSES",
    "OUTCOME_LABELS",
    "UNACKNOWLEDGED_STATUSES",
    "AuditImmutable",
    "Escalation",
    "EscalationAudit",
    "EscalationError",
    "EscalationEvidence",
    "EscalationNotFound",
    "EscalationSettings",
    "EscalationTrail",
    "IllegalTransition",
    "NotStaff",
    "Notification",
    "NotificationKind",
    "NotificationStatus",
    "Outcome",
    "RetryPolicy",
    "SYSTEM_ACTOR",
    "Severity",
    "SlaPolicy",
    "Status",
    "UTCDateTime",
    "WEBHOOK_SIGNATURE_HEADER",
    "acknowledge",
    "active_deadlines",
    "add_note",
    "as_utc",
    "check_transition",
    "due_for_repage",
    "escalation_summary",
    "find_by_notice_event",
    "format_time",
    "get_escalation",
    "get_escalation_with_trail",
    "is_ack_reaction",
    "list_escalations",
    "mark_failed",
    "mark_sent",
    "next_notification_at",
    "normalize_escalation_id",
    "parse_outcome",
    "pending_notifications",
    "purge_excerpts",
    "raise_escalation",
    "repage",
    "resolve",
]
