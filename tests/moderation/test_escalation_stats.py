"""The dashboard's queue order and plots' numbers (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from moderation.escalation import Escalation
from moderation.escalation.stats import ack_times, per_day, queue

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # a Friday


def _esc(
    i: str,
    severity: str,
    *,
    created: datetime,
    deadline_min: float = 10,
    status: str = "open",
    ack_after_min: float | None = None,
) -> Escalation:
    return Escalation(
        id=f"E-{i}",
        room_id="!r:localhost",
        sender="@m:localhost",
        severity=severity,
        category="ideation",
        status=status,
        first_event_id="$e",
        latest_event_id="$e",
        created_at=created,
        updated_at=created,
        sla_deadline=created + timedelta(minutes=deadline_min),
        acknowledged_at=created + timedelta(minutes=ack_after_min) if ack_after_min is not None else None,
    )


def test_the_queue_is_most_severe_first_then_least_time_left_and_only_active():
    rows = [
        _esc("A", "high", created=NOW, deadline_min=5),
        _esc("B", "imminent", created=NOW, deadline_min=30),
        _esc("C", "imminent", created=NOW, deadline_min=2),
        _esc("D", "moderate", created=NOW, deadline_min=1),
        _esc("E", "imminent", created=NOW, deadline_min=1, status="resolved"),
        _esc("F", "high", created=NOW, deadline_min=1, status="acknowledged"),
    ]
    assert [e.id for e in queue(rows)] == ["E-C", "E-B", "E-F", "E-A", "E-D"]


def test_per_day_counts_by_tier_for_the_last_two_weeks():
    rows = [
        _esc("A", "imminent", created=NOW),
        _esc("B", "high", created=NOW - timedelta(hours=1)),
        _esc("C", "moderate", created=NOW - timedelta(days=3)),
        _esc("D", "high", created=NOW - timedelta(days=30)),
    ]
    days = per_day(rows, now=NOW)
    assert len(days) == 14
    assert days[-1].day == NOW.date()
    assert days[-1].by_tier == {"imminent": 1, "high": 1, "moderate": 0}
    assert days[-4].total == 1
    assert sum(d.total for d in days) == 3  # the one a month ago is outside


def test_time_to_acknowledge_median_and_p90_per_week():
    monday = NOW - timedelta(days=NOW.weekday())
    rows = [
        _esc(str(i), "high", created=monday + timedelta(hours=i), ack_after_min=m)
        for i, m in enumerate([1, 2, 3, 4, 10])
    ]
    rows.append(_esc("X", "high", created=monday, ack_after_min=None))  # not acknowledged: not counted
    weeks = ack_times(rows, now=NOW)
    assert len(weeks) == 8
    this = weeks[-1]
    assert this.week_start == monday.date()
    assert this.count == 5
    assert this.median_seconds == 180
    assert 240 < (this.p90_seconds or 0) <= 600
    assert weeks[0].median_seconds is None
