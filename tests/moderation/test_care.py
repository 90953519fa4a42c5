"""The care room of an escalation: take, the person's replies, being left alone, closing kindly
(moderation/escalation/care.py on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from bridge.escalation import render
from bridge.escalation.render import staff_alert_content
from moderation.escalation import IllegalTransition, NotStaff, care, resolve
from tests.moderation.test_escalation import DR_A, DR_B, MEMBER, STAFF, T0, _audit, _kinds, _raise

CARE_ROOM = "!care:localhost"
CLINICIANS = {DR_A, DR_B}


def test_taking_a_case_acknowledges_it_and_invites_the_clinician(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        care.set_care_room(s, esc.id, CARE_ROOM)
        care.set_care_room(s, esc.id, "!other:localhost")  # the first care room stays
        taken = care.take(s, esc.id, actor=DR_A, clinicians=CLINICIANS, now=T0 + timedelta(minutes=2))
        s.commit()
        assert taken.status == "acknowledged"
        assert (taken.acknowledged_by, taken.taken_by, taken.care_room_id) == (DR_A, DR_A, CARE_ROOM)
        assert _kinds(s, esc.id)[-3:] == ["staff_update", "care_join", "staff_update"]
        assert [a[0] for a in _audit(s, esc.id)][-2:] == ["acknowledged", "taken"]
        body = staff_alert_content(taken, names={DR_A: "Dr Ada"})["body"]
        assert f"WITH Dr Ada ({DR_A}) in the care room since 2025-03-04 14:02 UTC" in body


def test_take_is_refused_with_a_reason(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        with pytest.raises(NotStaff):
            care.take(s, esc.id, actor="@moderator:localhost", clinicians=CLINICIANS, now=T0)
        care.take(s, esc.id, actor=DR_A, clinicians=CLINICIANS, now=T0)
        with pytest.raises(IllegalTransition, match=f"taken by {DR_A}"):
            care.take(s, esc.id, actor=DR_B, clinicians=CLINICIANS, now=T0)
        with pytest.raises(IllegalTransition, match="already took"):
            care.take(s, esc.id, actor=DR_A, clinicians=CLINICIANS, now=T0)
        resolve(s, esc.id, actor=DR_A, staff=STAFF, outcome="contacted", now=T0)
        with pytest.raises(IllegalTransition, match="resolved"):
            care.take(s, esc.id, actor=DR_B, clinicians=CLINICIANS, now=T0)


def test_replies_page_on_call_until_someone_takes_it_and_never_carry_text(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        page = [DR_A]
        assert care.member_replied(s, esc.id, event_id="$r1", room_id=CARE_ROOM, now=T0, on_call=page)
        # a burst of replies pages once per five minutes, each reply attached
        assert not care.member_replied(
            s, esc.id, event_id="$r2", room_id=CARE_ROOM, now=T0 + timedelta(minutes=1), on_call=page
        )
        assert care.member_replied(
            s, esc.id, event_id="$r3", room_id=CARE_ROOM, now=T0 + timedelta(minutes=6), on_call=page
        )
        assert _kinds(s, esc.id).count("care_reply") == 2
        care.take(s, esc.id, actor=DR_B, clinicians=CLINICIANS, now=T0 + timedelta(minutes=7))
        assert not care.member_replied(
            s, esc.id, event_id="$r4", room_id=CARE_ROOM, now=T0 + timedelta(minutes=20), on_call=page
        )
        s.commit()
        assert esc.care_replies == 4
        assert esc.care_room_id == CARE_ROOM
        notes = [a for a in _audit(s, esc.id) if a[0] == "member_replied"]
        assert len(notes) == 4
        page_content = render.care_reply_page_content(
            esc, mentions=[DR_A], names={MEMBER: "River"}, server_name="localhost", tz=T0.tzinfo
        )
        assert page_content["msgtype"] == "m.text"  # it rings
        assert page_content["m.mentions"] == {"user_ids": [DR_A]}
        assert f"River ({MEMBER}) replied in their care room" in page_content["body"]


def test_the_person_can_be_left_alone_and_writing_again_ends_it(engine):
    with Session(engine) as s:
        esc, _ = _raise(s)
        care.leave_alone(s, esc.id, now=T0 + timedelta(minutes=1))
        assert "the person asked to be left alone at 2025-03-04 14:01 UTC" in staff_alert_content(esc)["body"]
        with pytest.raises(IllegalTransition, match="anyway"):
            care.take(s, esc.id, actor=DR_A, clinicians=CLINICIANS, now=T0 + timedelta(minutes=2))
        care.member_replied(
            s, esc.id, event_id="$r1", room_id=CARE_ROOM, now=T0 + timedelta(minutes=3), on_call=[DR_A]
        )
        assert esc.left_alone_at is None
        care.leave_alone(s, esc.id, now=T0 + timedelta(minutes=4))
        care.take(s, esc.id, actor=DR_A, clinicians=CLINICIANS, now=T0 + timedelta(minutes=5), anyway=True)
        s.commit()
        transitions = [a[0] for a in _audit(s, esc.id)]
        assert transitions.count("left_alone") == 2
        assert "member_returned" in transitions


def test_resolving_a_case_someone_talked_in_tells_the_person_kindly(engine):
    with Session(engine) as s:
        quiet, _ = _raise(s, "$q1")
        care.set_care_room(s, quiet.id, CARE_ROOM)
        resolve(s, quiet.id, actor=DR_A, staff=STAFF, outcome="false_alarm", now=T0)
        assert "care_closed" not in _kinds(s, quiet.id)  # nobody talked: nothing to close
        talked, _ = _raise(s, "$t1", now=T0 + timedelta(hours=1))
        care.set_care_room(s, talked.id, CARE_ROOM)
        care.take(s, talked.id, actor=DR_A, clinicians=CLINICIANS, now=T0 + timedelta(hours=1))
        resolve(s, talked.id, actor=DR_A, staff=STAFF, outcome="contacted", now=T0 + timedelta(hours=2))
        s.commit()
        assert _kinds(s, talked.id)[-1] == "care_closed"
    assert "closed this check-in" in render.care_closed_content("Dr Ada")["body"]
    join = render.care_join_content("Dr Ada (clinical psychologist)")["body"]
    assert join.startswith("Dr Ada (clinical psychologist) from Hearth's care team has joined this room.")
    assert "!alone" in join


def test_the_active_case_of_a_care_room(engine):
    with Session(engine) as s:
        assert care.active_case(s, MEMBER, CARE_ROOM) is None
        esc, _ = _raise(s)
        assert care.active_case(s, MEMBER, CARE_ROOM).id == esc.id  # no care room yet: theirs
        care.set_care_room(s, esc.id, CARE_ROOM)
        assert care.active_case(s, MEMBER, CARE_ROOM).id == esc.id
        assert care.active_case(s, MEMBER, "!another:localhost") is None
        assert care.active_case(s, "@someone:localhost", CARE_ROOM) is None
