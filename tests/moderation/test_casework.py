"""Moderators' casework, the pure domain: durations and escalating defaults, the review queue,
reports that never count twice, sanctions in force and due, appeals decided by a second moderator,
notes with labels and a member's file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import Session

from moderation import casework as cw
from moderation.casework import CaseKind, CaseStatus, SanctionDefaults, SanctionKind
from tests.moderation.factories import T0

ALEX = "@alex:localhost"
SAM, PRIYA = "@sam:localhost", "@priya:localhost"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2W", timedelta(weeks=2)),
    ],
)
def test_durations_as_moderators_type_them(text, expected):
    assert cw.parse_duration(text) == expected
    assert cw.looks_like_duration(text)


def test_permanent_and_bad_durations():
    assert cw.parse_duration("permanent") is None
    for bad in ("10", "ten minutes", "0m", "-5m", "99999d", ""):
        with pytest.raises(ValueError, match="duration|longer|zero"):
            cw.parse_duration(bad)
    assert not cw.looks_like_duration("being")
    assert cw.describe_duration(timedelta(hours=2)) == "2 hours"
    assert cw.describe_duration(timedelta(minutes=1)) == "1 minute"
    assert cw.describe_duration(None) == "permanently"


def test_default_durations_escalate_with_history_and_the_last_step_repeats():
    d = SanctionDefaults(mute=["1h", "1d"], ban=["7d", "permanent"])
    assert [d.duration_for("mute", n) for n in range(3)] == [
        timedelta(hours=1),
        timedelta(days=1),
        timedelta(days=1),
    ]
    assert d.duration_for("ban", 0) == timedelta(days=7)
    assert d.duration_for("ban", 5) is None  # permanent
    with pytest.raises(ValidationError, match="cannot be permanent"):
        SanctionDefaults(mute=["1h", "permanent"])
    with pytest.raises(ValidationError, match="not a duration"):
        SanctionDefaults(ban=["a week"])


def _flag(s: Session, event_id: str = "$e1", **kw) -> tuple[cw.ModCase, bool]:
    args = {
        "kind": CaseKind.FLAG,
        "room_id": "!r:localhost",
        "event_id": event_id,
        "subject": ALEX,
        "space": "anxiety",
        "reason": "flagged by screening",
        "now": T0,
    } | kw
    return cw.open_case(s, **args)


def _report(s: Session, key: str, event_id: str = "$e1", reporter: str = "@b:localhost", **kw):
    return cw.add_report(
        s,
        source_key=key,
        room_id="!r:localhost",
        event_id=event_id,
        subject=ALEX,
        space="anxiety",
        reporter=reporter,
        reason="rude to me",
        now=T0,
        **kw,
    )


def test_a_flag_and_reports_of_one_message_meet_in_one_case_and_a_report_never_counts_twice(engine):
    with Session(engine) as s:
        case, created = _flag(s, signals=["toxicity.insult"])
        assert created
        again = _report(s, "synapse:7", synapse_id=7)
        assert again is not None
        assert again == (case, False)
        assert _report(s, "synapse:7", synapse_id=7) is None  # the same Synapse report, after a restart
        _report(s, "synapse:9", synapse_id=9, reporter="@c:localhost")
        assert case.reports == 2
        assert case.priority == 2
        assert cw.last_synapse_report(s) == 9
        assert cw.last_synapse_report(s, "synapse-user") == 0
        assert cw.reports_against(s, ALEX) == 2
        assert [r.reporter for r in cw.reporters_of(s, case.id)] == ["@b:localhost", "@c:localhost"]
        s.commit()


def test_the_queue_is_ordered_by_priority_then_age_and_decisions_close_cases(engine):
    with Session(engine) as s:
        old, _ = _flag(s, "$old")
        new, _ = _flag(s, "$new", now=T0 + timedelta(minutes=5), priority=3)
        assert [c.id for c in cw.open_cases(s)] == [new.id, old.id]
        cw.decide_case(s, old.id.lower(), actor=SAM, status=CaseStatus.DISMISSED, decision="fine", now=T0)
        assert [c.id for c in cw.open_cases(s)] == [new.id]
        with pytest.raises(cw.CaseworkError, match="dismissed already"):
            cw.decide_case(s, old.id, actor=PRIYA, status=CaseStatus.ACTIONED, decision="x", now=T0)
        with pytest.raises(cw.CaseNotFound):
            cw.get_case(s, "M-ZZZZZZ")
        # A decided message that is reported again opens a new case.
        _, created = _flag(s, "$old")
        assert created


def _sanction(s: Session, kind: SanctionKind, hours: float | None, *, at=T0, by=SAM, scope="anxiety"):
    return cw.add_sanction(
        s,
        user=ALEX,
        kind=kind,
        scope=scope,
        reason="unkind",
        by=by,
        now=at,
        duration=timedelta(hours=hours) if hours is not None else None,
    )


def test_sanctions_in_force_expire_and_a_warning_is_over_once_given(engine):
    with Session(engine) as s:
        warn = _sanction(s, SanctionKind.WARN, None)
        mute = _sanction(s, SanctionKind.MUTE, 1)
        ban = _sanction(s, SanctionKind.BAN, None, scope=cw.ALL_SPACES)
        assert warn.ended_at is not None
        assert cw.earlier_sanctions(s, ALEX, SanctionKind.MUTE) == 1
        active = cw.active_sanctions(s, T0 + timedelta(minutes=30), user=ALEX)
        assert [a.id for a in active] == [mute.id, ban.id]
        mutes = cw.active_mutes(s, T0 + timedelta(minutes=30))[ALEX]
        assert mutes[0].covers("anxiety")
        assert not mutes[0].covers("grief")
        later = T0 + timedelta(hours=2)
        assert cw.active_mutes(s, later) == {}
        assert [d.id for d in cw.due_to_expire(s, later)] == [mute.id]  # the permanent ban never comes due
        cw.end_sanction(s, mute.id, by="hearth", reason="expired", now=later)
        assert cw.due_to_expire(s, later) == []
        assert cw.scope_covers(cw.ALL_SPACES, "grief")


def test_an_appeal_is_decided_by_another_moderator_and_lifting_ends_the_sanction(engine):
    with Session(engine) as s:
        with pytest.raises(cw.CaseworkError, match="no recent"):
            cw.open_appeal(s, ALEX, "please", now=T0, retention=timedelta(days=90))
        mute = _sanction(s, SanctionKind.MUTE, 24)
        appeal = cw.open_appeal(s, ALEX, "I was quoting", now=T0, retention=timedelta(days=90))
        assert appeal.sanction_id == mute.id
        with pytest.raises(cw.CaseworkError, match="already with the moderators"):
            cw.open_appeal(s, ALEX, "again", now=T0, retention=timedelta(days=90))
        with pytest.raises(cw.NotPermitted, match="another moderator"):
            cw.decide_appeal(s, appeal.id, actor=SAM, lift=True, note="", now=T0)
        assert cw.appeals_waiting(s, now=T0 + timedelta(hours=25), longer_than=timedelta(hours=24)) == [
            appeal
        ]
        decided, sanction = cw.decide_appeal(s, appeal.id, actor=PRIYA, lift=True, note="misread", now=T0)
        assert decided.status == "lifted"
        assert sanction.ended_at is not None
        assert sanction.end_reason == "appeal"
        with pytest.raises(cw.CaseworkError, match="decided already"):
            cw.decide_appeal(s, appeal.id, actor=PRIYA, lift=False, note="", now=T0)
        s.commit()
        assert cw.purge_appeal_text(s, T0 + timedelta(days=91)) == 1
        s.commit()
        assert cw.get_appeal(s, appeal.id).text == ""


def test_notes_take_labels_and_the_member_file_gathers_everything(engine):
    with Session(engine) as s:
        _flag(s)
        _report(s, "synapse:1", synapse_id=1)
        _sanction(s, SanctionKind.MUTE, 1)
        note = cw.add_note(
            s, ALEX, by=SAM, text="Struggling this week #vulnerable #Follow-up, go gently", now=T0
        )
        assert note.labels == ["follow-up", "vulnerable"]
        with pytest.raises(cw.CaseworkError):
            cw.add_note(s, ALEX, by=SAM, text="  ", now=T0)
        f = cw.member_file(s, ALEX)
        assert len(f.cases) == 1
        assert f.reports_against == 1
        assert [x.kind for x in f.sanctions] == ["mute"]
        assert [n.text for n in f.notes] == [note.text]


def test_a_reporter_is_trusted_by_their_record_and_counts_once_per_case(engine):
    bea = "@bea:localhost"
    with Session(engine) as s:
        for i, status in enumerate([CaseStatus.ACTIONED] * 3 + [CaseStatus.DISMISSED]):
            result = _report(s, f"synapse:{i}", event_id=f"$old{i}", reporter=bea, synapse_id=i)
            assert result is not None
            cw.decide_case(s, result[0].id, actor=SAM, status=status, decision="x", now=T0)
        record = cw.reporter_record(s, bea)
        assert (record.upheld, record.dismissed) == (3, 1)
        assert record.trusted(3, 0.7)
        assert not record.trusted(4, 0.7)
        assert not record.trusted(3, 0.8)
        assert not cw.ReporterRecord(0, 0).trusted(1, 0.5)
        case, _ = _report(s, "reply:$a", event_id="$new", reporter=bea, trusted=True) or (None, None)
        assert case is not None
        _report(s, "reply:$b", event_id="$new", reporter=bea, trusted=True)  # the same reporter again
        assert case.reports == 2
        assert case.trusted_reports == 1
        assert case.priority == 3  # a trusted report comes first in the queue


def test_a_burst_of_refused_messages_from_one_member_is_one_held_case(engine):
    with Session(engine) as s:
        first, _ = _flag(s, "$h1", kind=CaseKind.HELD, signals=["harm.spam"])
        found = cw.open_held_case(s, ALEX, "!r:localhost", since=T0 - timedelta(minutes=10))
        assert found is not None
        assert found.id == first.id
        cw.add_held(s, first.id, signals=["rules.abuse"], now=T0)
        assert first.held == 2
        assert first.signals == ["harm.spam", "rules.abuse"]
        assert cw.open_held_case(s, ALEX, "!other:localhost", since=T0 - timedelta(minutes=10)) is None
        assert cw.open_held_case(s, ALEX, "!r:localhost", since=T0 + timedelta(minutes=1)) is None
