"""What the clinicians' dashboard shows at a glance: the open cases in the order to act on them, and
how the service is doing (escalations per day by tier, time to acknowledge per week). Pure functions
over escalation rows; the bridge reads the rows and draws the plots."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from moderation.escalation.tables import Escalation
from moderation.escalation.types import ACTIVE_STATUSES, Severity

TIERS: tuple[str, ...] = (Severity.IMMINENT.value, Severity.HIGH.value, Severity.MODERATE.value)


def queue(rows: Iterable[Escalation]) -> list[Escalation]:
    """Active escalations in the order to act on them: most severe first, then least time left on the SLA."""
    active = [e for e in rows if e.status in {s.value for s in ACTIVE_STATUSES}]
    return sorted(active, key=lambda e: (-Severity(e.severity).rank, e.sla_deadline, e.id))


@dataclass(frozen=True)
class DayCount:
    day: date
    by_tier: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_tier.values())


def per_day(rows: Iterable[Escalation], *, now: datetime, days: int = 14) -> list[DayCount]:
    """Escalations raised on each of the last ``days`` days (UTC), oldest first, counted by tier."""
    today = now.date()
    first = today - timedelta(days=days - 1)
    counts = {first + timedelta(days=i): dict.fromkeys(TIERS, 0) for i in range(days)}
    for e in rows:
        d = e.created_at.date()
        if d in counts and e.severity in counts[d]:
            counts[d][e.severity] += 1
    return [DayCount(d, c) for d, c in counts.items()]


@dataclass(frozen=True)
class WeekAck:
    week_start: date
    count: int
    median_seconds: float | None
    p90_seconds: float | None


def _p90(values: Sequence[float]) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def weekly_waits(
    pairs: Iterable[tuple[datetime, datetime | None]], *, now: datetime, weeks: int = 8
) -> list[WeekAck]:
    """Waits from start to end, median and p90 for each of the last ``weeks`` weeks (Monday-based, by
    the week of the start), oldest first; pairs without an end are not counted; None for an empty week."""
    this_monday = now.date() - timedelta(days=now.weekday())
    starts = [this_monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    waits: dict[date, list[float]] = {s: [] for s in starts}
    for start, end in pairs:
        if end is None:
            continue
        monday = start.date() - timedelta(days=start.weekday())
        if monday in waits:
            waits[monday].append((end - start).total_seconds())
    out = []
    for s in starts:
        w = sorted(waits[s])
        out.append(WeekAck(s, len(w), statistics.median(w) if w else None, _p90(w) if w else None))
    return out


def ack_times(rows: Iterable[Escalation], *, now: datetime, weeks: int = 8) -> list[WeekAck]:
    """Time from raising to acknowledgement, median and p90 for each of the last ``weeks`` weeks
    (Monday-based, by the week the escalation was raised), oldest first; None for a week without any."""
    return weekly_waits(((e.created_at, e.acknowledged_at) for e in rows), now=now, weeks=weeks)
