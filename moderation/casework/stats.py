"""What the moderators' pages plot (pure): messages blocked and flagged per label per week, and the
time from a case opening to its decision per week (median and p90)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from moderation.casework.tables import ModCase
from moderation.escalation.stats import WeekAck, weekly_waits

COUNTED = ("block", "flag")


@dataclass(frozen=True)
class LabelWeek:
    week_start: date
    counts: dict[str, int]  # "block harm.spam" -> n

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _mondays(now: datetime, weeks: int) -> list[date]:
    this_monday = now.date() - timedelta(days=now.weekday())
    return [this_monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def label_of(reason: str) -> str:
    """``toxicity.insult (not block: crisis)`` -> ``toxicity.insult``."""
    return reason.split(" ", 1)[0].split(":", 1)[0] or "other"


def per_label_week(
    decisions: Iterable[tuple[datetime, Sequence[dict[str, Any]]]], *, now: datetime, weeks: int = 8
) -> list[LabelWeek]:
    """Messages blocked or flagged in each of the last ``weeks`` weeks (Monday-based), by disposition
    and label, oldest first. ``decisions``: (decided_at, dispositions) of screening decisions."""
    starts = _mondays(now, weeks)
    counts: dict[date, dict[str, int]] = {s: {} for s in starts}
    for decided_at, dispositions in decisions:
        monday = decided_at.date() - timedelta(days=decided_at.weekday())
        if monday not in counts:
            continue
        seen = set()
        for d in dispositions:
            if d.get("kind") in COUNTED:
                key = f"{d['kind']} {label_of(str(d.get('reason', '')))}"
                if key not in seen:
                    seen.add(key)
                    counts[monday][key] = counts[monday].get(key, 0) + 1
    return [LabelWeek(s, counts[s]) for s in starts]


def review_times(cases: Iterable[ModCase], *, now: datetime, weeks: int = 8) -> list[WeekAck]:
    """Time from a case opening to its decision, median and p90 per week it opened."""
    return weekly_waits(((c.created_at, c.decided_at) for c in cases), now=now, weeks=weeks)
