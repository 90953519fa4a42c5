"""What members read about sessions: the schedule pinned in a group-session room, the reminders, the
notices when a room opens and closes, and the answer to ``!sessions``. Pure text from the rows.

The pinned schedule says how each series repeats (never "next Wednesday"), so it changes only when
the series do, and applying unchanged themes changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from spaces.plan import PIN_EVENT, Pinned, pinned_message
from spaces.sessions.recurrence import Recurrence, describe
from spaces.sessions.store import SeriesView

FORMAT_NOTES: dict[str, str] = {
    "peer-group": "",
    "guided-exercise": (
        "Guided exercise: every movement is offered, never required, and can be done seated. Stop if "
        "anything hurts more than usual, and follow the advice of your own clinicians."
    ),
    "exposure-practice": (
        "Practice together: everyone works at their own level of this space's practice ladder, and "
        "steps down whenever they like. Your level is private to you (!level in your private room "
        "with Hearth); nobody else sees it."
    ),
}

HOW_IT_WORKS = (
    "The room opens for posting when a session starts and its facilitator is here, and is read-only "
    "again when it ends. Send !sessions to Hearth in your private room for the next dates, and "
    "!remind <ID> for reminders a day and 15 minutes before (!remind off <ID> stops them)."
)


def when(rec: Recurrence, at: datetime) -> str:
    """A session's start in its own zone: "Wed 7 Jan, 19:00-20:15 Europe/London"."""
    local = rec.local(at)
    end = rec.local(at + rec.duration)
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M}-{end:%H:%M} {rec.timezone}"


def schedule_message(series: Sequence[SeriesView]) -> Pinned:
    """The schedule pinned in one group-session room, from the series held there."""
    parts = ["## Sessions in this room"]
    if not series:
        parts.append(
            "No sessions are scheduled here yet. Moderators add them; !sessions in your private room "
            "with Hearth lists the sessions in every space."
        )
    for view in sorted(series, key=lambda v: (v.recurrence.first_local.time(), v.title)):
        lines = [
            f"**{view.title}** (ID `{view.id}`): {describe(view.recurrence)}. Led by {view.led_by}.",
        ]
        if view.description:
            lines.append(view.description)
        if FORMAT_NOTES.get(view.format):
            lines.append(FORMAT_NOTES[view.format])
        parts.append("\n".join(lines))
    parts.append(HOW_IT_WORKS)
    return pinned_message(
        "\n\n".join(parts), marker=(PIN_EVENT, "schedule"), tag={PIN_EVENT: {"key": "schedule"}}
    )


def reminder_text(view: SeriesView, at: datetime, kind: str, room_name: str, level: str | None) -> str:
    """The private reminder a day or 15 minutes before a session."""
    lead = "tomorrow" if kind == "day" else "in 15 minutes"
    text = (
        f"Reminder: {view.title} starts {lead}, {when(view.recurrence, at)}, in {room_name}. "
        f"Led by {view.led_by}. Come as you are; you can listen without speaking."
    )
    if view.format == "guided-exercise":
        text += " Have water and a sturdy chair nearby; every movement is optional."
    if view.format == "exposure-practice" and level:
        text += f" Your current practice level (only you see this): {level}. Step down whenever you like."
    return text + f" (!remind off {view.id} stops these reminders.)"


def opened_text(view: SeriesView, at_end: datetime) -> str:
    local_end = view.recurrence.local(at_end)
    return (
        f"{view.title} has started: the room is open for posting until {local_end:%H:%M} "
        f"{view.recurrence.timezone}. Led by {view.led_by}. You can listen without speaking, and step "
        "out at any time."
    )


def closed_text(view: SeriesView, next_start: datetime | None) -> str:
    after = f" Next: {when(view.recurrence, next_start)}." if next_start else ""
    return (
        f"{view.title} has ended; thank you for coming. The room is read-only until the next session.{after}"
    )


def listing(
    rows: Sequence[tuple[SeriesView, Sequence[datetime], str]],
    reminded: set[str],
    space_names: dict[str, str],
) -> str:
    """``!sessions``: each series' next dates, its ID and whether the member has reminders on."""
    if not rows:
        return "No sessions are scheduled at the moment."
    lines = ["Next sessions (times in each session's own time zone):"]
    for view, starts, room in rows:
        space = space_names.get(view.space, view.space)
        dates = "; ".join(when(view.recurrence, t) for t in starts)
        mark = "reminders on" if view.id in reminded else f"!remind {view.id} for reminders"
        lines.append(
            f"- {view.title} ({space}, {room}), led by {view.led_by}: {dates} [ID {view.id}, {mark}]"
        )
    return "\n".join(lines)
