"""Escalation state machine, outbox and rendering, on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, SQLModel, select

from bridge.db import import_models
from bridge.escalation.render import (
    member_resources_content,
    region_lines_content,
    repage_content,
    staff_alert_content,
    status_edit_content,
)
from bridge.escalation.webhooks import sign_webhook, verify_webhook, webhook_body
from config.resources import load_crisis_resources
from moderation.escalation import (
    AuditImmutable,
    Escalation,
    EscalationAudit,
    EscalationEvidence,
    EscalationNotFound,
    IllegalTransition,
    Notification,
    NotStaff,
    Outcome,
    RetryPolicy,
    SlaPolicy,
    Status,
    acknowledge,
    active_deadlines,
    add_note,
    check_transition,
    due_for_repage,
    find_by_notice_event,
    get_escalation_with_trail,
    is_ack_reaction,
    list_escalations,
    mark_failed,
    mark_sent,
    parse_outcome,
    pending_notifications,
    purge_excerpts,
    raise_escalation,
    repage,
    resolve,
)
from moderation.types import Signal, Span

T0 = datetime(2025, 3, 4, 14, 0, tzinfo=UTC)
SLA = SlaPolicy()
ROOM = "!grief-checkin:localhost"
MEMBER = "@river:localhost"
DR_A = "@dr.ada:localhost"
DR_B = "@dr.bo:localhost"
BACKUP = "@dr.backup:localhost"
STAFF = {DR_A, DR_B, BACKUP}
TABLES = {"escalation", "escalation_evidence", "escalation_audit", "notification"}


def _raise(session: Session, event_id: str = "$e1", *, severity: str = "high", now: datetime = T0, **kw):
    args = {
        "room_id": ROOM,
        "sender": MEMBER,
        "event_id": event_id,
        "severity": severity,
        "category": "ideation",
        "signals": [
            Signal("crisis", "crisis.ideation", 0.91, (Span(0, 12),), tier=severity, category="ideation")
        ],
        "excerpt": "I can't do this anymore",
        "space": "grief",
        "locale": "en-GB",
        "now": now,
        "sla": SLA,
        "on_call": [DR_A],
    }
    args.update(kw)
    return raise_escalation(session, **args)


def _kinds(session: Session, esc_id: str) -> list[str]:
    rows = session.exec(
        select(Notification).where(Notification.escalation_id == esc_id).order_by(Notification.id)
    )
    return [n.kind for n in rows]


def _audit(session: Session, esc_id: str) -> list[tuple[str, str | None, str, str]]:
    rows = session.exec(
        select(EscalationAudit).where(EscalationAudit.escalation_id == esc_id).order_by(EscalationAudit.id)
    )
    return [(a.transition, a.from_status, a.to_status, a.actor) for a in rows]


# --- schema -----------------------------------------------------------------------------------


def _touches_ours(d) -> bool:
    if isinstance(d, list):  # modify_* ops come grouped per column
        return any(_touches_ours(x) for x in d)
    for part in d:
        if isinstance(part, str) and part in TABLES:
            return True
        if isinstance(part, sa.Table) and part.name in TABLES:
            return True
        table = getattr(part, "table", None)
        if isinstance(table, sa.Table) and table.name in TABLES:
            return True
    return False


def test_migration_matches_escalation_tables_including_indexes(engine):
    import_models()
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), SQLModel.metadata
        )
    assert [d for d in diff if _touches_ours(d)] == []


def test_aware_datetimes_round_trip(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        eid = esc.id
        s.commit()
    with Session(engine) as s:
        got = s.get(Escalation, eid)
        assert got.created_at == T0
        assert got.created_at.tzinfo is not None
        assert got.sla_deadline == T0 + timedelta(seconds=900)


def test_naive_datetime_refused(engine):
    with Session(engine) as s, pytest.raises(ValueError, match="naive"):
        _raise(s, now=datetime(2025, 1, 1))  # noqa: DTZ001


# --- lifecycle --------------------------------------------------------------------------------


def test_full_lifecycle_with_audit_trail(engine):
    with Session(engine) as s:
        esc, created = _raise(s)
        assert created
        assert esc.id.startswith("E-")
        assert len(esc.id) == 8
        assert esc.status == "open"
        s.commit()
        eid = esc.id

    with Session(engine) as s:
        esc = acknowledge(s, eid, actor=DR_A, staff=STAFF, now=T0 + timedelta(seconds=30), note="on it")
        assert (esc.status, esc.acknowledged_by) == ("acknowledged", DR_A)
        s.commit()

    with Session(engine) as s:
        esc = resolve(
            s,
            eid,
            actor=DR_A,
            staff=STAFF,
            outcome="contacted",
            now=T0 + timedelta(minutes=20),
            note="safe, plan made",
        )
        assert (esc.status, esc.outcome, esc.resolved_by) == ("resolved", "contacted", DR_A)
        assert esc.excerpt_purge_after == T0 + timedelta(minutes=20) + timedelta(days=30)
        s.commit()

    with Session(engine) as s:
        trail = get_escalation_with_trail(s, eid)
        assert [(a.transition, a.from_status, a.to_status, a.actor) for a in trail.audit] == [
            ("opened", None, "open", "hearth:system"),
            ("acknowledged", "open", "acknowledged", DR_A),
            ("resolved", "acknowledged", "resolved", DR_A),
        ]
        assert trail.audit[1].note == "on it"
        assert trail.audit[2].note == "outcome: contacted; safe, plan made"
        assert trail.audit[1].at == T0 + timedelta(seconds=30)
        assert [e.event_id for e in trail.evidence] == ["$e1"]
        assert trail.evidence[0].signals[0]["label"] == "crisis.ideation"
        assert trail.evidence[0].signals[0]["evidence"] == [[0, 12]]
        assert [n.kind for n in trail.notifications] == [
            "staff_alert",
            "member_resources",
            "staff_update",
            "staff_update",
        ]


def test_resolving_open_escalation_acknowledges_first(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        resolve(s, esc.id, actor=DR_B, staff=STAFF, outcome="false alarm", now=T0 + timedelta(minutes=1))
        assert esc.outcome == "false_alarm"
        assert [t[0] for t in _audit(s, esc.id)] == ["opened", "acknowledged", "resolved"]
        assert esc.acknowledged_by == DR_B


@pytest.mark.parametrize(
    ("setup", "action", "reason"),
    [
        ("acknowledged", "ack", "already acknowledged by @dr.ada:localhost at 2025-03-04 14:01 UTC"),
        ("resolved", "ack", "already resolved (false alarm) by @dr.ada:localhost"),
        ("resolved", "resolve", "a resolved escalation cannot change"),
        ("acknowledged", "repage", "is acknowledged by @dr.ada:localhost, so it is not re-paged"),
        ("resolved", "repage", "already resolved"),
        ("open", "repage", "not due yet"),
    ],
)
def test_illegal_transitions_refused_with_reason(engine, setup, action, reason):
    with Session(engine) as s:
        esc, _ = _raise(s)
        t1 = T0 + timedelta(minutes=1)
        if setup in ("acknowledged", "resolved"):
            acknowledge(s, esc.id, actor=DR_A, staff=STAFF, now=t1)
        if setup == "resolved":
            resolve(s, esc.id, actor=DR_A, staff=STAFF, outcome=Outcome.FALSE_ALARM, now=t1)
        before = _audit(s, esc.id)
        later = T0 + timedelta(hours=2) if setup != "open" else T0 + timedelta(seconds=10)
        attempts = {
            "ack": lambda: acknowledge(s, esc.id, actor=DR_B, staff=STAFF, now=later),
            "resolve": lambda: resolve(s, esc.id, actor=DR_B, staff=STAFF, outcome="contacted", now=later),
            "repage": lambda: repage(s, esc.id, now=later, sla=SLA, backup=[BACKUP]),
        }
        with pytest.raises(IllegalTransition) as info:
            attempts[action]()
        assert reason in str(info.value)
        assert info.value.escalation_id == esc.id
        assert _audit(s, esc.id) == before


def test_check_transition_table():
    esc = Escalation(id="E-TEST00", status="open")
    check_transition(esc, Status.ACKNOWLEDGED)
    check_transition(esc, Status.REPAGED)
    with pytest.raises(IllegalTransition, match="cannot go from open to resolved"):
        check_transition(esc, Status.RESOLVED)
    with pytest.raises(IllegalTransition, match="cannot go back to open"):
        check_transition(Escalation(id="E-TEST00", status="repaged"), Status.OPEN)


def test_non_staff_refused_and_nothing_changes(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        for call in (
            lambda: acknowledge(s, esc.id, actor=MEMBER, staff=STAFF, now=T0),
            lambda: resolve(s, esc.id, actor=MEMBER, staff=STAFF, outcome="contacted", now=T0),
            lambda: add_note(s, esc.id, actor="@troll:evil.example", staff=STAFF, note="x", now=T0),
        ):
            with pytest.raises(NotStaff, match="is not listed as Hearth staff"):
                call()
        assert esc.status == "open"
        assert [t[0] for t in _audit(s, esc.id)] == ["opened"]


def test_unknown_escalation_and_outcome(engine):
    with Session(engine) as s:
        with pytest.raises(EscalationNotFound, match="There is no escalation E-NOPE00"):
            acknowledge(s, "E-NOPE00", actor=DR_A, staff=STAFF, now=T0)
        esc, _ = _raise(s)
        with pytest.raises(ValueError, match="use one of: contacted, referred_emergency"):
            resolve(s, esc.id, actor=DR_A, staff=STAFF, outcome="vanished", now=T0)
    assert parse_outcome("Referred") is Outcome.REFERRED_EMERGENCY
    assert parse_outcome("handed-to-other-service") is Outcome.HANDED_TO_OTHER_SERVICE


def test_ack_accepts_typed_id_spellings(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        acknowledge(s, esc.id.lower().removeprefix("e-"), actor=DR_A, staff=STAFF, now=T0)
        assert esc.status == "acknowledged"


def test_notes_allowed_after_resolution(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        resolve(s, esc.id, actor=DR_A, staff=STAFF, outcome="contacted", now=T0)
        row = add_note(
            s, esc.id, actor=DR_B, staff=STAFF, note="  follow-up call done  ", now=T0 + timedelta(days=1)
        )
        assert (row.transition, row.to_status, row.note) == ("note", "resolved", "follow-up call done")
        with pytest.raises(ValueError, match="empty"):
            add_note(s, esc.id, actor=DR_B, staff=STAFF, note="  ", now=T0)


# --- merge ------------------------------------------------------------------------------------


def test_same_person_same_room_merges_with_evidence_and_upgrade(engine):
    with Session(engine) as s:
        esc, created = _raise(s, "$e1", severity="moderate")
        assert created
        assert esc.sla_deadline == T0 + timedelta(hours=1)
        s.commit()
        t1 = T0 + timedelta(minutes=5)
        again, created2 = _raise(s, "$e2", severity="imminent", now=t1, category="plan", excerpt="tonight")
        assert not created2
        assert again.id == esc.id
        assert (again.severity, again.category, again.excerpt) == ("imminent", "plan", "tonight")
        assert again.sla_deadline == t1 + timedelta(seconds=120)  # tightened
        assert (again.message_count, again.first_event_id, again.latest_event_id) == (2, "$e1", "$e2")
        # a lower tier merges without downgrading
        third, _ = _raise(s, "$e3", severity="moderate", now=t1 + timedelta(seconds=5), excerpt="sorry")
        assert (third.severity, third.excerpt, third.sla_deadline) == (
            "imminent",
            "tonight",
            t1 + timedelta(seconds=120),
        )
        s.commit()

        assert len(s.exec(select(Escalation)).all()) == 1
        ev = s.exec(select(EscalationEvidence).order_by(EscalationEvidence.id)).all()
        assert [(e.event_id, e.severity) for e in ev] == [
            ("$e1", "moderate"),
            ("$e2", "imminent"),
            ("$e3", "moderate"),
        ]
        audit = s.exec(select(EscalationAudit).order_by(EscalationAudit.id)).all()
        assert [a.transition for a in audit] == ["opened", "merged", "merged"]
        assert "severity moderate -> imminent" in audit[1].note
        # resources go out once per episode; each merge edits the alert
        assert _kinds(s, esc.id) == ["staff_alert", "member_resources", "staff_update", "staff_update"]
        updates = s.exec(
            select(Notification).where(Notification.kind == "staff_update").order_by(Notification.id)
        )
        assert [n.payload["mentions"] for n in updates] == [[DR_A], []]


def test_merge_into_acknowledged_keeps_status_and_pings_acknowledger_on_upgrade(engine):
    with Session(engine) as s:
        esc, _ = _raise(s, "$e1", severity="high")
        acknowledge(s, esc.id, actor=DR_B, staff=STAFF, now=T0)
        merged, created = _raise(s, "$e2", severity="imminent", now=T0 + timedelta(minutes=1), on_call=[DR_A])
        assert not created
        assert merged.status == "acknowledged"
        last = s.exec(select(Notification).order_by(Notification.id.desc())).first()
        assert last.payload["mentions"] == [DR_A, DR_B]


def test_same_event_twice_is_a_no_op(engine):
    with Session(engine) as s:
        esc, _ = _raise(s, "$e1")
        s.commit()
        for severity in ("high", "moderate"):
            again, created = _raise(s, "$e1", severity=severity)
            assert (again.id, created, again.severity, again.message_count) == (esc.id, False, "high", 1)
        assert _kinds(s, esc.id) == ["staff_alert", "member_resources"]


def test_same_event_read_as_more_urgent_upgrades_without_counting_it_twice(engine):
    """The rules' fast verdict raised it at the gate; the models then read the same message as
    imminent: the case is upgraded (shorter SLA, the alert edited), still one message."""
    with Session(engine) as s:
        esc, _ = _raise(s, "$e1", severity="high")
        s.commit()
        deadline = esc.sla_deadline
        again, created = _raise(s, "$e1", severity="imminent")
        assert (again.id, created, again.severity, again.message_count) == (esc.id, False, "imminent", 1)
        assert again.sla_deadline < deadline
        assert _kinds(s, esc.id) == ["staff_alert", "member_resources", "staff_update"]
        assert s.exec(select(EscalationEvidence).where(EscalationEvidence.escalation_id == esc.id)).all()
        assert [a[0] for a in _audit(s, esc.id)] == ["opened", "merged"]


def test_other_room_or_person_or_new_episode_opens_new(engine):
    with Session(engine) as s:
        a, _ = _raise(s, "$e1")
        b, created_b = _raise(s, "$e2", room_id="!other:localhost")
        c, created_c = _raise(s, "$e3", sender="@someone:localhost")
        assert created_b
        assert created_c
        assert len({a.id, b.id, c.id}) == 3
        resolve(s, a.id, actor=DR_A, staff=STAFF, outcome="contacted", now=T0)
        d, created_d = _raise(s, "$e4", now=T0 + timedelta(days=2))
        assert created_d
        assert d.id != a.id
        assert _kinds(s, d.id)[:2] == ["staff_alert", "member_resources"]


def test_database_refuses_two_active_episodes(engine):
    """Two workers racing to open the same episode: the partial unique index stops the second."""
    with Session(engine) as s:
        esc, _ = _raise(s)
        s.commit()
        dup = Escalation(
            id="E-DUP000",
            room_id=ROOM,
            sender=MEMBER,
            severity="high",
            category="ideation",
            first_event_id="$x",
            latest_event_id="$x",
            created_at=T0,
            updated_at=T0,
            sla_deadline=T0,
        )
        s.add(dup)
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
        resolve(s, esc.id, actor=DR_A, staff=STAFF, outcome="contacted", now=T0)
        s.add(dup)
        s.flush()  # fine once the first episode is resolved


# --- audit is append-only ---------------------------------------------------------------------


def test_audit_rows_cannot_be_changed_or_deleted(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        s.commit()
        row = s.exec(select(EscalationAudit)).one()
        row.note = "rewritten"
        with pytest.raises(AuditImmutable):
            s.flush()
        s.rollback()
        s.delete(s.exec(select(EscalationAudit)).one())
        with pytest.raises(AuditImmutable):
            s.flush()
        s.rollback()
    # and the database itself refuses, whatever the client
    for stmt in ("UPDATE escalation_audit SET note = 'x'", "DELETE FROM escalation_audit"):
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(stmt))
    with Session(engine) as s:
        assert s.exec(select(EscalationAudit)).one().note.startswith("message $e1")


# --- SLA and re-paging ------------------------------------------------------------------------


def test_repage_after_deadline_with_fake_clock(engine):
    with Session(engine) as s:
        esc, _ = _raise(s, severity="imminent", on_call=[DR_A])
        s.commit()
        eid = esc.id
        assert active_deadlines(s) == [(eid, T0 + timedelta(seconds=120))]

        assert due_for_repage(s, T0 + timedelta(seconds=119)) == []
        t1 = T0 + timedelta(seconds=120)
        assert [e.id for e in due_for_repage(s, t1)] == [eid]

        notes = repage(s, eid, now=t1, sla=SLA, backup=[BACKUP, DR_A], clinicians=[DR_A, DR_B])
        s.commit()
        assert [n.kind for n in notes] == ["repage", "staff_update"]
        assert notes[0].payload == {"mentions": [BACKUP, DR_A, DR_B], "repage": 1}
        esc = s.get(Escalation, eid)
        assert (esc.status, esc.repage_count, esc.sla_deadline) == ("repaged", 1, t1 + timedelta(seconds=120))
        assert due_for_repage(s, t1 + timedelta(seconds=60)) == []

        t2 = t1 + timedelta(seconds=121)
        assert [e.id for e in due_for_repage(s, t2)] == [eid]
        notes2 = repage(s, eid, now=t2, sla=SLA, backup=[BACKUP])
        assert notes2[0].txn_id == f"hearth.{eid}.repage.1"
        assert esc.repage_count == 2

        acknowledge(s, eid, actor=BACKUP, staff=STAFF, now=t2 + timedelta(seconds=5))
        assert due_for_repage(s, t2 + timedelta(hours=5)) == []
        assert active_deadlines(s) == []
        assert [t[0] for t in _audit(s, eid)] == ["opened", "repaged", "repaged", "acknowledged"]
        assert [t[1:3] for t in _audit(s, eid)][1:] == [
            ("open", "repaged"),
            ("repaged", "repaged"),
            ("repaged", "acknowledged"),
        ]


def test_repage_of_non_imminent_mentions_backup_only(engine):
    with Session(engine) as s:
        esc, _ = _raise(s, severity="moderate")
        notes = repage(
            s, esc.id, now=T0 + timedelta(hours=1), sla=SLA, backup=[BACKUP], clinicians=[DR_A, DR_B]
        )
        assert notes[0].payload["mentions"] == [BACKUP]


def test_sla_policy_defaults_and_validation():
    assert (SLA.imminent, SLA.high, SLA.moderate) == (120, 900, 3600)
    assert SlaPolicy(imminent=5).deadline("imminent", T0) == T0 + timedelta(seconds=5)
    with pytest.raises(ValueError, match="greater than 0"):
        SlaPolicy(high=0)


# --- outbox -----------------------------------------------------------------------------------


def test_outbox_committed_with_escalation_and_txn_ids_deterministic(engine):
    with Session(engine) as s:
        esc, _ = _raise(s, webhook=True)
        s.rollback()  # the caller's transaction failed: nothing at all survives
        assert s.exec(select(Notification)).all() == []
        assert s.exec(select(Escalation)).all() == []

        esc, _ = _raise(s, webhook=True)
        s.commit()
        eid = esc.id
        pend = pending_notifications(s, T0)
        assert [(n.kind, n.txn_id) for n in pend] == [
            ("staff_alert", f"hearth.{eid}.staff_alert.0"),
            ("member_resources", f"hearth.{eid}.member_resources.0"),
            ("webhook", f"hearth.{eid}.webhook.0"),
        ]
        assert pend[0].payload == {"mentions": [DR_A]}
        assert pend[1].payload == {"user_id": MEMBER, "room_id": ROOM, "locale": "en-GB"}


def test_mark_sent_twice_is_harmless_and_records_alert_event(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        s.commit()
        alert = pending_notifications(s, T0)[0]
        assert alert.kind == "staff_alert"
        mark_sent(s, alert.id, result_event_id="$alert1", now=T0 + timedelta(seconds=1))
        s.commit()
        # a crash after sending but before commit would resend with the same txn id; a second
        # mark_sent (e.g. from the retried send) changes nothing
        again = mark_sent(s, alert.id, result_event_id="$alert2", now=T0 + timedelta(seconds=9))
        assert (again.status, again.result_event_id, again.attempts) == ("sent", "$alert1", 1)
        assert again.sent_at == T0 + timedelta(seconds=1)
        assert s.get(Escalation, esc.id).alert_event_id == "$alert1"
        assert find_by_notice_event(s, "$alert1").id == esc.id
        assert [n.kind for n in pending_notifications(s, T0 + timedelta(seconds=10))] == ["member_resources"]


def test_staff_update_waits_for_the_alert_it_edits(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        acknowledge(s, esc.id, actor=DR_A, staff=STAFF, now=T0)
        s.commit()
        assert [n.kind for n in pending_notifications(s, T0)] == ["staff_alert", "member_resources"]
        alert = pending_notifications(s, T0)[0]
        mark_sent(s, alert.id, result_event_id="$alert", now=T0)
        assert [n.kind for n in pending_notifications(s, T0)] == ["member_resources", "staff_update"]


def test_mark_failed_backs_off_exponentially(engine):
    retry = RetryPolicy(base_seconds=2, factor=2, max_seconds=10)
    with Session(engine) as s:
        _raise(s)
        s.commit()
        n = pending_notifications(s, T0)[0]
        now = T0
        waits = []
        for _ in range(5):
            mark_failed(s, n.id, error="M_LIMIT_EXCEEDED", now=now, retry=retry)
            waits.append((n.next_attempt_at - now).total_seconds())
            assert n.id not in [p.id for p in pending_notifications(s, now)]
            now = n.next_attempt_at
            assert n.id in [p.id for p in pending_notifications(s, now)]
        assert waits == [2, 4, 8, 10, 10]
        assert (n.status, n.attempts, n.last_error) == ("pending", 5, "M_LIMIT_EXCEEDED")
        mark_sent(s, n.id, result_event_id="$ok", now=now)
        assert (n.status, n.attempts, n.last_error) == ("sent", 6, None)
        mark_failed(s, n.id, error="late", now=now, retry=retry)  # ignored once sent
        assert n.status == "sent"


def test_webhook_gives_up_after_max_attempts(engine):
    with Session(engine) as s:
        esc, _ = _raise(s, webhook=True)
        hook = next(n for n in pending_notifications(s, T0) if n.kind == "webhook")
        for i in range(3):
            mark_failed(
                s, hook.id, error="502", now=T0 + timedelta(minutes=i), retry=RetryPolicy(max_attempts=3)
            )
        assert hook.status == "failed"
        assert hook.id not in [n.id for n in pending_notifications(s, T0 + timedelta(days=1))]


def test_list_and_filter(engine):
    with Session(engine) as s:
        a, _ = _raise(s, "$a", severity="imminent")
        b, _ = _raise(s, "$b", room_id="!r2:localhost", now=T0 + timedelta(minutes=1))
        c, _ = _raise(s, "$c", room_id="!r3:localhost", severity="moderate", now=T0 + timedelta(minutes=2))
        acknowledge(s, b.id, actor=DR_A, staff=STAFF, now=T0)
        s.commit()
        assert [e.id for e in list_escalations(s)] == [c.id, b.id, a.id]
        assert [e.id for e in list_escalations(s, status="open")] == [c.id, a.id]
        assert [e.id for e in list_escalations(s, status=["acknowledged", "resolved"])] == [b.id]
        assert [e.id for e in list_escalations(s, severity="imminent")] == [a.id]
        assert [e.id for e in list_escalations(s, room_id="!r3:localhost")] == [c.id]
        assert [e.id for e in list_escalations(s, limit=1, offset=1)] == [b.id]


def test_purge_excerpts_after_retention(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        resolve(
            s,
            esc.id,
            actor=DR_A,
            staff=STAFF,
            outcome="contacted",
            now=T0,
            excerpt_retention=timedelta(days=7),
        )
        assert purge_excerpts(s, T0 + timedelta(days=6)) == 0
        assert purge_excerpts(s, T0 + timedelta(days=7)) == 1
        assert esc.excerpt == ""
        assert purge_excerpts(s, T0 + timedelta(days=8)) == 0
        assert "(excerpt purged)" in staff_alert_content(esc)["body"]


# --- rendering --------------------------------------------------------------------------------


def _esc(**kw) -> Escalation:
    base = {
        "id": "E-7K3QX2",
        "room_id": ROOM,
        "sender": MEMBER,
        "space": "grief",
        "severity": "imminent",
        "category": "plan",
        "status": "open",
        "first_event_id": "$ev1",
        "latest_event_id": "$ev1",
        "message_count": 1,
        "created_at": T0,
        "updated_at": T0,
        "sla_deadline": T0 + timedelta(minutes=2),
        "repage_count": 0,
        "excerpt": "I <b>can't</b> & \"won't\"",
    }
    base.update(kw)
    return Escalation(**base)


def test_staff_alert_content_shape():
    c = staff_alert_content(
        _esc(),
        room_name="Check-in",
        space_name="Grief & Loss",
        mentions=[DR_A, DR_A],
        server_name="localhost",
    )
    assert c["msgtype"] == "m.text"  # a notice would never ring (default push rules)
    assert c["format"] == "org.matrix.custom.html"
    assert c["m.mentions"] == {"user_ids": [DR_A]}
    assert c["org.hearth.escalation"] == {
        "id": "E-7K3QX2",
        "severity": "imminent",
        "category": "plan",
        "status": "open",
        "room_id": ROOM,
        "event_id": "$ev1",
        "sender": MEMBER,
    }
    link = "https://matrix.to/#/!grief-checkin:localhost/$ev1?via=localhost"
    html_ = c["formatted_body"]
    assert f'href="{link}"' in html_
    assert link in c["body"]
    assert "I &lt;b&gt;can&#x27;t&lt;/b&gt; &amp; &quot;won&#x27;t&quot;" in html_
    assert "<b>can't</b>" not in html_
    assert "I <b>can't</b> & \"won't\"" in c["body"]
    assert f'<a href="https://matrix.to/#/{DR_A}">{DR_A}</a>' in html_
    for piece in ("IMMINENT", "plan", "Grief &amp; Loss › Check-in", "2025-03-04 14:00 UTC", "!ack E-7K3QX2"):
        assert piece in html_
    assert "Grief & Loss › Check-in" in c["body"]
    json.dumps(c)  # serialisable as event content


def test_alerts_name_people_by_display_name_and_categories_in_words():
    names = {DR_A: "Dr Ada Lind (psychiatrist)", MEMBER: "River"}
    c = staff_alert_content(_esc(category="plan_or_means"), mentions=[DR_A], names=names)
    body, html_ = c["body"], c["formatted_body"]
    assert "IMMINENT · plan or means" in body
    assert "plan_or_means" not in body
    assert "plan_or_means" not in html_
    assert f"Member: River ({MEMBER})" in body
    assert f"On call: Dr Ada Lind (psychiatrist) ({DR_A})" in body
    assert f'<a href="https://matrix.to/#/{DR_A}">Dr Ada Lind (psychiatrist)</a>' in html_
    assert c["m.mentions"] == {"user_ids": [DR_A]}  # the mention that rings is by ID, whatever the name
    assert c["org.hearth.escalation"]["category"] == "plan_or_means"  # machines keep the identifier
    acked = _esc(status="acknowledged", acknowledged_by=DR_A, acknowledged_at=T0 + timedelta(minutes=1))
    assert (
        f"ACKNOWLEDGED by Dr Ada Lind (psychiatrist) ({DR_A})"
        in status_edit_content(acked, original_alert_event_id="$a", names=names)["m.new_content"]["body"]
    )
    repage = repage_content(
        _esc(status="repaged", repage_count=1, category="concern_for_other"), mentions=[DR_A], names=names
    )
    assert "worried about someone else" in repage["body"]
    assert "Dr Ada Lind" in repage["formatted_body"]
    # a display name is member-controlled text: escaped, and the ID is always beside it
    sly = staff_alert_content(_esc(), names={MEMBER: "<b>Dr</b> Ada"})
    assert "&lt;b&gt;Dr&lt;/b&gt; Ada (@river:localhost)" in sly["formatted_body"]


def test_every_crisis_category_has_words():
    from bridge.escalation.render import CATEGORY_WORDS, category_words
    from moderation.labels import CATEGORIES

    assert set(CATEGORY_WORDS) == set(CATEGORIES)
    assert all("_" not in category_words(c) for c in CATEGORIES)
    assert category_words("something_new") == "something new"


def test_status_edit_content_is_an_m_replace_with_status_in_both_levels():
    esc = _esc(status="acknowledged", acknowledged_by=DR_A, acknowledged_at=T0 + timedelta(minutes=1))
    c = status_edit_content(esc, original_alert_event_id="$alert", room_name="Check-in")
    assert c["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$alert"}
    assert c["org.hearth.escalation"]["status"] == "acknowledged"
    assert c["m.new_content"]["org.hearth.escalation"]["status"] == "acknowledged"
    assert "m.relates_to" not in c["m.new_content"]
    assert c["body"].startswith("* ")
    assert f"ACKNOWLEDGED by {DR_A} at 2025-03-04 14:01 UTC" in c["m.new_content"]["body"]
    assert c["m.mentions"] == {"user_ids": []}
    assert "!ack" not in c["m.new_content"]["body"]


def test_repage_content_replies_and_mentions():
    esc = _esc(status="repaged", repage_count=2)
    c = repage_content(esc, mentions=[BACKUP, DR_B], reply_to="$alert")
    assert c["m.relates_to"] == {"m.in_reply_to": {"event_id": "$alert"}}
    assert c["m.mentions"] == {"user_ids": [BACKUP, DR_B]}
    assert "Re-page #2" in c["body"]
    assert c["org.hearth.escalation"]["status"] == "repaged"
    assert "m.relates_to" not in repage_content(esc, mentions=[BACKUP])


def test_member_resources_content_is_warm_and_localised():
    catalogue = load_crisis_resources()
    uk = member_resources_content("en-GB", catalogue)
    assert "116 123" in uk["body"]
    assert "999" in uk["body"]
    assert "haven't done anything wrong" in uk["body"]
    us = member_resources_content("en_US", catalogue)
    assert "call 988 or text 988" in us["body"]
    anywhere = member_resources_content(None, catalogue)
    assert "findahelpline.com" in anywhere["formatted_body"]
    assert anywhere["org.hearth.resources"]["region"] == "default"
    for c in (uk, us, anywhere):
        low = c["body"].lower()
        for bad in ("violat", "banned", "suspend", "method", "pills", "rope", "warning"):
            assert bad not in low
        assert c["m.mentions"] == {}


def test_imminent_risk_puts_the_emergency_number_first_and_the_space_adds_its_own_lines():
    catalogue = load_crisis_resources()
    imminent = member_resources_content("GB", catalogue, severity="imminent", theme="grief-loss")
    assert imminent["body"].startswith("If you're in danger right now, please call 999 (or 112) now")
    assert imminent["formatted_body"].startswith("<p><b>If you&#x27;re in danger right now")
    body = imminent["body"]
    assert body.index("Cruse Bereavement Support") < body.index("Samaritans") < body.index("Shout")
    high = member_resources_content("GB", catalogue, severity="high", theme="anxiety-panic")
    assert high["body"].startswith("Hi, this is Hearth")
    assert "Cruse" not in high["body"]
    assert "!region GB" in high["body"]  # the person can say where they are


def test_region_reply_lists_the_chosen_countrys_lines():
    catalogue = load_crisis_resources()
    us = region_lines_content("US", catalogue)
    assert us["body"].startswith("Thank you. From now on I'll show you help for United States.")
    assert "call 911" in us["body"]
    assert "988 Suicide & Crisis Lifeline: call 988 or text 988" in us["body"]
    assert us["msgtype"] == "m.text"
    cleared = region_lines_content(None, catalogue)
    assert "wherever you are" in cleared["body"]
    assert "findahelpline.com" in cleared["formatted_body"]


def test_ack_reaction_matching_ignores_variation_selector():
    assert is_ack_reaction("✅", ["✅"])
    assert is_ack_reaction("👍\ufe0f", ["👍"])
    assert not is_ack_reaction("❤️", ["✅", "👍"])


# --- webhook ----------------------------------------------------------------------------------


def test_webhook_sign_verify_and_tamper(engine):
    secret = b"s3cret"
    with Session(engine) as s:
        esc, _ = _raise(s, webhook=True)
        hook = next(n for n in pending_notifications(s, T0) if n.kind == "webhook")
        body = webhook_body(hook)
    doc = json.loads(body)
    assert doc["id"] == hook.txn_id
    assert doc["type"] == "escalation.opened"
    assert doc["escalation"]["id"] == esc.id
    assert "can't" not in body.decode()  # no message text leaves the system
    assert webhook_body(hook) == body  # deterministic bytes for retries

    ts = 1_741_096_800
    header = sign_webhook(secret, body, ts)
    assert header.startswith(f"t={ts},v1=")
    assert len(header.split("v1=")[1]) == 64
    assert verify_webhook(secret, body, header, now_ts=ts + 10)
    assert not verify_webhook(secret, body + b" ", header, now_ts=ts)
    assert not verify_webhook(b"other", body, header, now_ts=ts)
    assert not verify_webhook(secret, body, header.replace(f"t={ts}", f"t={ts + 1}"), now_ts=ts)
    assert not verify_webhook(secret, body, header, now_ts=ts + 301)  # replayed too late
    assert not verify_webhook(secret, body, "garbage", now_ts=ts)
