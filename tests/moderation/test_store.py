from datetime import timedelta

from sqlmodel import Session

from moderation import store
from moderation.types import Disposition, Signal, Span, Verdict
from tests.moderation.factories import T0, message


def test_decision_round_trip_without_text(engine):
    m = message("I have the pills ready tonight")
    v = Verdict(
        m.event_id,
        [Disposition("escalate", "crisis.plan_or_means", tier="imminent", category="plan_or_means")],
        [
            Signal(
                "crisis",
                "crisis.plan_or_means",
                0.97,
                (Span(2, 6),),
                rule="plan.means_ready",
                tier="imminent",
            )
        ],
        {"crisis": 0.01},
        {},
    )
    with Session(engine) as s:
        store.save_decision(s, m, v, now=T0)
        s.commit()
    with Session(engine) as s:
        row = store.get_decision(s, m.event_id)
        assert row is not None
        assert row.signals[0]["spans"] == [[2, 6]]
        assert row.signals[0]["tier"] == "imminent"
        assert row.dispositions[0]["kind"] == "escalate"
        assert "pills" not in repr(row.model_dump())
        assert row.source == "gate"
        assert row.acted_at is None
        # a rescreen replaces the gate's decision
        store.save_decision(s, m, Verdict(m.event_id, [Disposition("allow")]), now=T0, source="rescreen")
        store.mark_acted(s, m.event_id, now=T0 + timedelta(seconds=1))
        s.commit()
    with Session(engine) as s:
        row = store.get_decision(s, m.event_id)
        assert row is not None
        assert row.source == "rescreen"
        assert row.acted_at is not None
        assert store.get_decision(s, "$missing") is None


def test_flag_and_purge(engine):
    with Session(engine) as s:
        store.flag(
            s, message("needs review"), "detector_failed:toxicity", now=T0, retention=timedelta(days=1)
        )
        store.flag(s, message("keep"), "rules.cruelty", now=T0, retention=timedelta(days=30))
        s.commit()
    with Session(engine) as s:
        assert [f.body for f in store.open_flags(s)] == ["needs review", "keep"]
        assert store.purge_expired(s, T0 + timedelta(days=2)) == 1
        s.commit()
    with Session(engine) as s:
        assert [f.body for f in store.open_flags(s)] == ["keep"]
