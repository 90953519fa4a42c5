"""A member's own data: the export holds what Hearth keeps about them, and erasing leaves audit
trails without their identifier, keeping only an open crisis case and sanctions in force."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from bridge import member_data
from moderation import casework as cw
from moderation import store
from moderation.escalation import Escalation, SlaPolicy, raise_escalation, resolve
from moderation.types import Disposition, Verdict
from tests.moderation.factories import T0, message

ALEX = "@alex:localhost"


def _setup(s: Session) -> str:
    m = message("feeling rough today", sender=ALEX)
    store.save_decision(s, m, Verdict(m.event_id, [Disposition("allow")]), now=T0)
    store.flag(s, m, "toxicity.insult", now=T0)
    esc, _ = raise_escalation(
        s,
        room_id="!r:localhost",
        sender=ALEX,
        event_id="$crisis",
        severity="high",
        category="ideation",
        signals=[],
        excerpt="I can't go on",
        space="grief",
        locale=None,
        now=T0,
        sla=SlaPolicy(),
    )
    cw.add_note(s, ALEX, by="@sam:localhost", text="check in gently #vulnerable", now=T0)
    cw.add_sanction(
        s,
        user=ALEX,
        kind=cw.SanctionKind.MUTE,
        scope="grief",
        reason="x",
        by="@sam:localhost",
        now=T0,
        duration=timedelta(hours=1),
    )
    cw.audit(s, actor="@sam:localhost", action="mute", now=T0, subject=ALEX)
    s.flush()
    return esc.id


def test_the_export_holds_what_hearth_keeps_and_erasing_leaves_no_identifier(engine):
    with Session(engine) as s:
        esc_id = _setup(s)
        data = member_data.export(s, ALEX, now=T0)
        assert len(data["screening_decisions"]) == 1
        assert data["messages_kept_for_review"][0]["body"] == "feeling rough today"
        assert data["escalations"][0]["excerpt"] == "I can't go on"
        assert data["moderators_notes"][0]["labels"] == ["vulnerable"]
        assert b"feeling rough today" in member_data.export_file(data)

        # While the crisis case is open and the mute in force, those two stay.
        first = member_data.erase(s, ALEX, now=T0 + timedelta(minutes=5))
        assert first.kept_active_escalations == 1
        assert first.kept_active_sanctions == 1
        assert s.exec(select(Escalation).where(Escalation.sender == ALEX)).one().id == esc_id
        resolve(
            s,
            esc_id,
            actor="@clin:localhost",
            staff=["@clin:localhost"],
            outcome="contacted",
            now=T0,
            note=None,
        )
        later = T0 + timedelta(hours=2)  # the mute has ended
        second = member_data.erase(s, ALEX, now=later)
        assert second.kept_active_escalations == 0
        assert second.kept_active_sanctions == 0
        s.commit()
        after = member_data.export(s, ALEX, now=later)
        assert all(not v for k, v in after.items() if isinstance(v, list)), after
        # The audit trails stay, without the identifier.
        esc = s.get(Escalation, esc_id)
        assert esc is not None
        assert esc.sender.startswith("forgotten-")
        assert esc.excerpt == ""
        audit = s.exec(select(cw.ModAudit)).one()
        assert audit.subject is not None
        assert audit.subject.startswith("forgotten-")
