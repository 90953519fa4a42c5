"""When a group session happens: a recurrence rule read in the session's own time zone.

A series is a first local start (``2026-01-07T19:00`` in ``Europe/London``), a duration and an
RFC 5545 recurrence rule, expanded by ``dateutil.rrule`` over *local* wall-clock times and only then
turned into UTC: a weekly 19:00 session stays at 19:00 for the people in that zone across a daylight
saving change (18:00 UTC in summer, 19:00 UTC in winter for London). A local time that does not exist
on the day the clocks go forward (01:30 in London) happens an hour later by the wall clock (PEP 495,
``fold=0``); one that happens twice when they go back is the first of the two.

Themes and moderators write the rule in words (:func:`parse_repeat`): ``once``, ``daily``,
``weekly mon,thu``, ``fortnightly tue``, ``monthly 1st mon`` / ``monthly last fri``, or a raw
``rrule:FREQ=...``. Pure: nothing here reads a clock; callers pass ``now``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

DAYS: dict[str, str] = {
    "mon": "MO",
    "tue": "TU",
    "wed": "WE",
    "thu": "TH",
    "fri": "FR",
    "sat": "SA",
    "sun": "SU",
}
DAY_NAMES: dict[str, str] = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}
ORDINALS: dict[str, int] = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "last": -1}
ORDINAL_NAMES: dict[int, str] = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
ONCE = "FREQ=DAILY;COUNT=1"
REPEAT_HELP = (
    "once | daily | weekly <days> | fortnightly <days> | monthly <1st|2nd|3rd|4th|last> <day> | "
    "rrule:<RFC 5545 rule>; days are mon,tue,wed,thu,fri,sat,sun"
)


class RecurrenceError(ValueError):
    """A rule, time zone or time that cannot be used; the message says which and why."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``RecurrenceError`` if unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RecurrenceError(f"unknown IANA time zone {name!r} (for example Europe/London)") from None


def _days(text: str, first: date) -> str:
    if not text:
        return list(DAYS.values())[first.weekday()]
    out = []
    for part in text.split(","):
        day = DAYS.get(part.strip().lower()[:3])
        if day is None:
            raise RecurrenceError(f"{part.strip()!r} is not a day: use {','.join(DAYS)}")
        out.append(day)
    return ",".join(dict.fromkeys(out))


def parse_repeat(text: str, first: date) -> str:
    """The RFC 5545 rule (without ``RRULE:``) for a repeat written in words; ``first`` is the first
    day (its weekday when ``weekly`` names none). ``RecurrenceError`` says what is wrong."""
    words = text.strip().split(maxsplit=1)
    if not words:
        raise RecurrenceError(f"say how it repeats: {REPEAT_HELP}")
    head, rest = words[0].lower(), (words[1] if len(words) > 1 else "").strip()
    if head.startswith("rrule:"):
        rule = text.strip()[len("rrule:") :].strip()
        check_rule(rule)
        return rule
    if head == "once" and not rest:
        return ONCE
    if head == "daily" and not rest:
        return "FREQ=DAILY"
    if head == "weekly":
        return f"FREQ=WEEKLY;BYDAY={_days(rest, first)}"
    if head == "fortnightly":
        return f"FREQ=WEEKLY;INTERVAL=2;BYDAY={_days(rest, first)}"
    if head == "monthly":
        m = re.fullmatch(r"(1st|2nd|3rd|4th|last)\s+([a-z]+)", rest.lower())
        if m is None:
            raise RecurrenceError(
                "monthly needs which and what day, e.g. 'monthly 1st mon' or 'monthly last fri'"
            )
        return f"FREQ=MONTHLY;BYDAY={ORDINALS[m.group(1)]:+d}{_days(m.group(2), first)}"
    raise RecurrenceError(f"{text.strip()!r} is not a repeat I know: {REPEAT_HELP}")


def check_rule(rule: str) -> None:
    """Raise ``RecurrenceError`` unless ``rule`` is an RFC 5545 rule that dateutil can expand and
    that does not repeat more than hourly (a session is not a heartbeat)."""
    if not rule or rule.upper().startswith("RRULE:") or "\n" in rule:
        raise RecurrenceError("give the rule itself, e.g. rrule:FREQ=WEEKLY;BYDAY=WE")
    try:
        parsed = rrulestr(rule, dtstart=datetime(2000, 1, 3, 12, 0))  # noqa: DTZ001 (local wall time)
    except (ValueError, TypeError) as e:
        raise RecurrenceError(f"not a recurrence rule dateutil understands ({e})") from None
    if not isinstance(parsed, rrule):
        raise RecurrenceError("one rule only (no RDATE/EXDATE sets)")
    freq = re.search(r"FREQ=([A-Z]+)", rule.upper())
    if freq is None or freq.group(1) in ("SECONDLY", "MINUTELY", "HOURLY"):
        raise RecurrenceError("sessions repeat daily at most (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)")


@dataclass(frozen=True)
class Recurrence:
    """A series' timing: the first start in local wall-clock time, its zone, duration and rule."""

    rule: str
    timezone: str
    first_local: datetime  # naive: wall-clock time in ``timezone``
    duration: timedelta

    def __post_init__(self) -> None:
        if self.first_local.tzinfo is not None:
            raise RecurrenceError("first_local is the wall-clock time in the session's zone: naive")
        if not timedelta(minutes=5) <= self.duration <= timedelta(hours=8):
            raise RecurrenceError("a session lasts between 5 minutes and 8 hours")
        zone(self.timezone)
        check_rule(self.rule)

    @classmethod
    def of(cls, rule: str, timezone: str, first: str, duration_minutes: int) -> Recurrence:
        """From stored values (``first`` as ISO local date-time)."""
        return cls(rule, timezone, datetime.fromisoformat(first), timedelta(minutes=duration_minutes))

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def once(self) -> bool:
        return self.rule == ONCE

    def _rule(self) -> rrule:
        parsed = rrulestr(self.rule, dtstart=self.first_local)
        assert isinstance(parsed, rrule)  # check_rule refused sets
        return parsed

    def to_utc(self, local: datetime) -> datetime:
        """A wall-clock time in this zone as UTC (a time skipped by a clock change comes an hour
        later; a repeated one is its first)."""
        return local.replace(tzinfo=self.zone, fold=0).astimezone(UTC)

    def starts_between(self, after: datetime, before: datetime) -> list[datetime]:
        """UTC starts in ``[after, before)`` (aware datetimes)."""
        _aware(after, before)
        tz = self.zone
        # Expand over local wall-clock times a day wider than the window on each side (offsets are
        # under a day), then keep the starts whose UTC time is inside it.
        lo = after.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
        hi = before.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
        starts = (self.to_utc(local) for local in self._rule().between(lo, hi, inc=True))
        return sorted(s for s in starts if after <= s < before)

    def next_starts(
        self, now: datetime, count: int, horizon: timedelta = timedelta(days=400)
    ) -> list[datetime]:
        """The next ``count`` UTC starts at or after ``now`` (within ``horizon``)."""
        return self.starts_between(now, now + horizon)[:count]

    def last_start(self) -> datetime | None:
        """The UTC start of the last occurrence of a bounded rule (COUNT or UNTIL), else None."""
        upper = self.rule.upper()
        if "COUNT=" not in upper and "UNTIL=" not in upper:
            return None
        starts = list(self._rule())
        return self.to_utc(starts[-1]) if starts else None

    def local(self, when: datetime) -> datetime:
        """``when`` (aware) in this series' zone."""
        _aware(when)
        return when.astimezone(self.zone)


def _aware(*values: datetime) -> None:
    for v in values:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("pass aware datetimes")


def describe(rec: Recurrence) -> str:
    """How often, in words: "Every Wednesday, 19:00-20:15 (Europe/London time)"."""
    start = rec.first_local
    end = start + rec.duration
    hours = f"{start:%H:%M}-{end:%H:%M} ({rec.timezone} time)"
    rule = rec.rule.upper()
    fields = dict(part.split("=", 1) for part in rule.split(";") if "=" in part)
    days = fields.get("BYDAY", "")
    if rec.once:
        return f"Once, on {start:%A} {start.day} {start:%B %Y}, {hours}"
    if fields.get("FREQ") == "DAILY" and set(fields) <= {"FREQ"}:
        return f"Every day, {hours}"
    if fields.get("FREQ") == "WEEKLY" and set(fields) <= {"FREQ", "BYDAY", "INTERVAL"}:
        names = [DAY_NAMES.get(d, d) for d in days.split(",")] if days else [f"{start:%A}"]
        when = " and ".join(names)
        every = "Every other" if fields.get("INTERVAL") == "2" else "Every"
        if fields.get("INTERVAL") not in (None, "1", "2"):
            every = f"Every {fields['INTERVAL']} weeks on"
        return f"{every} {when}, {hours}"
    m = re.fullmatch(r"([+-]?\d)([A-Z]{2})", days)
    if fields.get("FREQ") == "MONTHLY" and m and set(fields) <= {"FREQ", "BYDAY"}:
        nth = ORDINAL_NAMES.get(int(m.group(1)), m.group(1))
        return f"The {nth} {DAY_NAMES.get(m.group(2), m.group(2))} of every month, {hours}"
    return f"Repeating ({rec.rule}), {hours}"


def first_local_for(first_day: date, at: time) -> datetime:
    """The naive local start from a first day and a wall-clock time."""
    return datetime.combine(first_day, at.replace(tzinfo=None, second=0, microsecond=0))
