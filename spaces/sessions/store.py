"""Group sessions in the database: series from themes and moderators, dated occurrences, who leads,
reminders, attendance and private exposure levels. Pure domain: every function takes the caller's
``Session`` (inside its transaction) and ``now``; nothing here reads a clock, talks to Matrix or
schedules anything (``bridge.sessions`` does, from these rows).

An occurrence moves scheduled -> open when it has started and a facilitator is present (arrived up to
:data:`EARLY_ARRIVAL` before), open -> closed at its end (or when its facilitator ends it), and
scheduled -> missed if it ended without opening; a moderator may cancel one that has not opened.
:func:`advance` says which, given ``now``: catching up after downtime is the same call, late.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from spaces.sessions.recurrence import Recurrence
from spaces.sessions.tables import (
    ExposureLevel,
    SessionAttendee,
    SessionFacilitator,
    SessionOccurrence,
    SessionReminder,
    SessionSeries,
)
from spaces.themes import Exposure, SessionSpec, Theme, room_alias

EARLY_ARRIVAL = timedelta(minutes=15)  # a facilitator may arrive (be "present") this long before
REMINDER_LEADS: dict[str, timedelta] = {"day": timedelta(hours=24), "soon": timedelta(minutes=15)}
ACTIVE = ("scheduled", "open")
FORMATS = ("peer-group", "guided-exercise", "exposure-practice")


class SessionError(ValueError):
    """A request about sessions that cannot be carried out; the message is the answer to give."""


@dataclass(frozen=True)
class SeriesView:
    """What a series is, however it was made (a theme's spec or a database row)."""

    id: str
    space: str
    room_alias: str
    title: str
    format: str
    led_by: str
    description: str
    recurrence: Recurrence

    @classmethod
    def of(cls, row: SessionSeries) -> SeriesView:
        rec = Recurrence.of(row.rule, row.timezone, row.first_local, row.duration_minutes)
        return cls(row.id, row.space, row.room_alias, row.title, row.format, row.led_by, row.description, rec)

    def columns(self) -> dict[str, Any]:
        """The row's values (everything but bookkeeping)."""
        rec = self.recurrence
        return {
            "space": self.space,
            "room_alias": self.room_alias,
            "title": self.title,
            "format": self.format,
            "led_by": self.led_by,
            "description": self.description,
            "timezone": rec.timezone,
            "rule": rec.rule,
            "first_local": rec.first_local.isoformat(timespec="minutes"),
            "duration_minutes": int(rec.duration.total_seconds() // 60),
        }


TIMING = ("timezone", "rule", "first_local", "duration_minutes")


def theme_series_id(theme_key: str) -> str:
    """A theme session's series ID: stable, so the pinned schedule can name it before it is synced."""
    return hashlib.sha256(theme_key.encode()).hexdigest()[:6]


def theme_series(themes: Iterable[Theme], server_name: str) -> dict[str, SeriesView]:
    """Every session the themes schedule, by theme key (``<theme>/<session slug>``)."""
    out: dict[str, SeriesView] = {}
    for theme in themes:
        for room in theme.rooms:
            for spec in room.sessions:
                key = f"{theme.slug}/{spec.slug}"
                out[key] = _view(theme_series_id(key), theme, room_alias(theme, room, server_name), spec)
    return out


def _view(series_id: str, theme: Theme, alias: str, spec: SessionSpec) -> SeriesView:
    return SeriesView(
        series_id,
        theme.slug,
        alias,
        spec.title,
        spec.format,
        spec.led_by,
        " ".join((spec.description or "").split()),
        spec.recurrence(),
    )


def active_series(s: Session) -> list[SessionSeries]:
    """Series not ended, oldest first."""
    q = (
        select(SessionSeries)
        .where(col(SessionSeries.ended_at).is_(None))
        .order_by(col(SessionSeries.created_at))
    )
    return list(s.exec(q))


def planned_series(s: Session, themes: Sequence[Theme], server_name: str) -> list[SeriesView]:
    """The active series as they will be once the themes are synced (what ``spaces plan`` shows):
    the moderators' from the database, the themes' from the themes."""
    mods = [SeriesView.of(r) for r in active_series(s) if r.theme_key is None]
    return mods + list(theme_series(themes, server_name).values())


@dataclass
class SyncResult:
    added: list[str]
    updated: list[str]
    ended: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.ended)


def sync_theme_series(s: Session, themes: Sequence[Theme], server_name: str, now: datetime) -> SyncResult:
    """Bring the themes' series into the database: add new ones, update changed ones (a changed time
    drops the dates not yet started, so they are made again), end those no theme names any more."""
    result = SyncResult([], [], [])
    wanted = theme_series(themes, server_name)
    rows = {
        str(r.theme_key): r
        for r in s.exec(select(SessionSeries).where(col(SessionSeries.theme_key).is_not(None)))
    }
    for key, view in wanted.items():
        values = view.columns()
        row = rows.get(key)
        if row is None:
            s.add(
                SessionSeries(
                    id=view.id, theme_key=key, created_by="theme", created_at=now, updated_at=now, **values
                )
            )
            result.added.append(key)
            continue
        changed = {k for k, v in values.items() if getattr(row, k) != v}
        if not changed and row.ended_at is None:
            continue
        for k in changed:
            setattr(row, k, values[k])
        row.updated_at, row.ended_at = now, None
        s.add(row)
        if changed & set(TIMING):
            drop_future(s, row.id, now)
        result.updated.append(key)
    for key, row in rows.items():
        if key not in wanted and row.ended_at is None:
            end_series(s, row, now)
            result.ended.append(key)
    return result


def drop_future(s: Session, series_id: str, now: datetime) -> int:
    """Forget a series' dates that have not started (they are made again from its new timing)."""
    res = s.execute(
        delete(SessionOccurrence).where(
            col(SessionOccurrence.series_id) == series_id,
            col(SessionOccurrence.status) == "scheduled",
            col(SessionOccurrence.starts_at) > now,
        )
    )
    return int(getattr(res, "rowcount", 0) or 0)


def end_series(s: Session, row: SessionSeries, now: datetime) -> None:
    """End a series: no new dates, the ones not started are cancelled, its reminders stop."""
    row.ended_at = row.updated_at = now
    s.add(row)
    for occ in s.exec(
        select(SessionOccurrence).where(
            SessionOccurrence.series_id == row.id,
            SessionOccurrence.status == "scheduled",
            col(SessionOccurrence.starts_at) > now,
        )
    ):
        occ.status = "cancelled"
        s.add(occ)
    s.execute(delete(SessionReminder).where(col(SessionReminder.series_id) == row.id))


def add_series(
    s: Session,
    *,
    space: str,
    room_alias: str,
    title: str,
    format: str,
    led_by: str,
    recurrence: Recurrence,
    facilitators: Sequence[str],
    by: str,
    now: datetime,
    description: str = "",
) -> SessionSeries:
    """A moderator's series (``!session add``), with the people named to lead it."""
    if format not in FORMATS:
        raise SessionError(f"{format!r} is not a session format: {', '.join(FORMATS)}")
    if recurrence.last_start() is not None and recurrence.last_start() <= now:  # type: ignore[operator]
        raise SessionError("that session would be in the past: give a later date")
    series_id = secrets.token_hex(3)
    while s.get(SessionSeries, series_id) is not None:
        series_id = secrets.token_hex(3)
    view = SeriesView(series_id, space, room_alias, title, format, led_by, description, recurrence)
    row = SessionSeries(id=series_id, created_by=by, created_at=now, updated_at=now, **view.columns())
    s.add(row)
    for user in dict.fromkeys(facilitators):
        s.add(SessionFacilitator(series_id=series_id, user_id=user, added_by=by, added_at=now))
    return row


def series(s: Session, series_id: str) -> SessionSeries:
    """The series ``series_id`` (``SessionError`` if there is none)."""
    row = s.get(SessionSeries, series_id.strip().lower())
    if row is None:
        raise SessionError(f"There is no session series {series_id!r}: !sessions lists them with their IDs.")
    return row


def occurrence_id(series_id: str, start: datetime) -> str:
    return f"{series_id}-{start:%Y%m%dT%H%MZ}"


def materialize(s: Session, now: datetime, horizon: timedelta) -> list[SessionOccurrence]:
    """Make the dated occurrences of every active series from now (one in progress included) to
    ``now + horizon``; returns the new ones. A date a moderator cancelled is never made again."""
    made: list[SessionOccurrence] = []
    for row in active_series(s):
        rec = SeriesView.of(row).recurrence
        for start in rec.starts_between(now - rec.duration, now + horizon):
            oid = occurrence_id(row.id, start)
            if s.get(SessionOccurrence, oid) is None:
                occ = SessionOccurrence(
                    id=oid, series_id=row.id, starts_at=start, ends_at=start + rec.duration
                )
                s.add(occ)
                made.append(occ)
    return made


def finish_series(s: Session, now: datetime) -> list[SessionSeries]:
    """End bounded series (``once``, or a rule with COUNT/UNTIL) whose last session is over, so the
    schedule stops showing them; returns them."""
    done = []
    for row in active_series(s):
        rec = SeriesView.of(row).recurrence
        last = rec.last_start()
        if last is not None and last + rec.duration <= now:
            row.ended_at = row.updated_at = now
            s.add(row)
            done.append(row)
    return done


def pending(s: Session) -> list[SessionOccurrence]:
    """Occurrences with something still to happen (scheduled or open): what jobs are rebuilt from."""
    q = select(SessionOccurrence).where(col(SessionOccurrence.status).in_(ACTIVE))
    return list(s.exec(q.order_by(col(SessionOccurrence.starts_at))))


def advance(occ: SessionOccurrence, now: datetime) -> str | None:
    """The status ``occ`` should move to at ``now`` (None: stay): a started session with a facilitator
    present opens, an ended one closes, one that ended without opening was missed."""
    if occ.status == "scheduled":
        if now >= occ.ends_at:
            return "missed"
        if now >= occ.starts_at and occ.present_at is not None:
            return "open"
    elif occ.status == "open" and now >= occ.ends_at:
        return "closed"
    return None


@dataclass(frozen=True)
class Transition:
    occurrence: SessionOccurrence
    series: SessionSeries
    old: str
    new: str


def room_series(s: Session, alias: str) -> list[SessionSeries]:
    """Every series (ended or not) held in the room ``alias``."""
    return list(s.exec(select(SessionSeries).where(SessionSeries.room_alias == alias)))


def settle_room(s: Session, alias: str, now: datetime) -> tuple[bool, list[Transition]]:
    """Move the room's occurrences on to where ``now`` puts them; returns whether the room should be
    open for posting (one of its sessions is open) and what changed."""
    rows = {r.id: r for r in room_series(s, alias)}
    if not rows:
        return False, []
    occs = s.exec(
        select(SessionOccurrence).where(
            col(SessionOccurrence.series_id).in_(list(rows)),
            col(SessionOccurrence.status).in_(ACTIVE),
            col(SessionOccurrence.starts_at) <= now,
        )
    ).all()
    changes: list[Transition] = []
    is_open = False
    for occ in occs:
        new = advance(occ, now)
        if new is not None:
            changes.append(Transition(occ, rows[occ.series_id], occ.status, new))
            occ.status = new
            if new == "open":
                occ.opened_at = now
            elif new == "closed":
                occ.closed_at = now
            s.add(occ)
        is_open = is_open or occ.status == "open"
    return is_open, changes


def has_open(s: Session, alias: str) -> bool:
    """Whether one of the room's sessions is open (in the database)."""
    ids = [r.id for r in room_series(s, alias)]
    q = select(SessionOccurrence).where(
        col(SessionOccurrence.series_id).in_(ids), SessionOccurrence.status == "open"
    )
    return bool(ids) and s.exec(q).first() is not None


def current(s: Session, alias: str, now: datetime) -> tuple[SessionOccurrence, SessionSeries] | None:
    """The room's session that a facilitator can be present for now (from :data:`EARLY_ARRIVAL`
    before its start until its end), the one starting first."""
    rows = {r.id: r for r in room_series(s, alias) if r.ended_at is None}
    if not rows:
        return None
    occ = s.exec(
        select(SessionOccurrence)
        .where(
            col(SessionOccurrence.series_id).in_(list(rows)),
            col(SessionOccurrence.status).in_(ACTIVE),
            col(SessionOccurrence.starts_at) <= now + EARLY_ARRIVAL,
            col(SessionOccurrence.ends_at) > now,
        )
        .order_by(col(SessionOccurrence.starts_at))
    ).first()
    return (occ, rows[occ.series_id]) if occ is not None else None


def facilitators(s: Session, series_id: str) -> list[str]:
    q = select(SessionFacilitator).where(SessionFacilitator.series_id == series_id)
    return [f.user_id for f in s.exec(q.order_by(col(SessionFacilitator.added_at)))]


def may_lead(row: SessionSeries, named: Sequence[str], user: str, hosts: Iterable[str]) -> bool:
    """Whether ``user`` can be the facilitator who opens ``row``'s sessions: one of the people named
    for it; with nobody named, a host (moderators and admins), except for guided exercise, which only
    the named professional leads."""
    if named:
        return user in named
    return row.format != "guided-exercise" and user in set(hosts)


def set_facilitator(s: Session, series_id: str, user: str, *, add: bool, by: str, now: datetime) -> None:
    row = s.get(SessionFacilitator, (series_id, user))
    if add and row is None:
        s.add(SessionFacilitator(series_id=series_id, user_id=user, added_by=by, added_at=now))
    elif not add and row is not None:
        s.delete(row)


def mark_present(s: Session, occ: SessionOccurrence, user: str, now: datetime) -> bool:
    """Record that a facilitator is there; False if one was already."""
    if occ.present_at is not None:
        return False
    occ.present_at, occ.present_by = now, user
    s.add(occ)
    return True


def end_early(s: Session, occ: SessionOccurrence, now: datetime) -> None:
    """The facilitator ends the session before its time (``!end``)."""
    occ.status = "closed" if occ.status == "open" else "missed"
    occ.closed_at = now
    s.add(occ)


def cancel(s: Session, series_id: str, day: date, now: datetime) -> SessionOccurrence:
    """A moderator cancels the session of ``series_id`` on ``day`` (in the session's own zone)."""
    row = series(s, series_id)
    rec = SeriesView.of(row).recurrence
    start_of_day = rec.to_utc(datetime.combine(day, datetime.min.time()))
    starts = rec.starts_between(start_of_day, start_of_day + timedelta(days=1, hours=1))
    starts = [t for t in starts if rec.local(t).date() == day]
    if not starts:
        raise SessionError(f"{row.title} has no session on {day:%a %d %b %Y}.")
    occ = s.get(SessionOccurrence, occurrence_id(row.id, starts[0]))
    if occ is None:
        occ = SessionOccurrence(
            id=occurrence_id(row.id, starts[0]),
            series_id=row.id,
            starts_at=starts[0],
            ends_at=starts[0] + rec.duration,
        )
    elif occ.status != "scheduled":
        raise SessionError(
            f"That session is {occ.status} already: only a session still to come can be cancelled."
        )
    if occ.starts_at <= now:
        raise SessionError("That session has started; its facilitator can end it with !end.")
    occ.status = "cancelled"
    s.add(occ)
    return occ


def upcoming(
    s: Session, now: datetime, *, per_series: int = 1, space: str | None = None
) -> list[tuple[SessionSeries, list[SessionOccurrence]]]:
    """The next sessions (scheduled or on now) of each active series, soonest first."""
    out = []
    for row in active_series(s):
        if space is not None and row.space != space:
            continue
        occs = s.exec(
            select(SessionOccurrence)
            .where(
                SessionOccurrence.series_id == row.id,
                col(SessionOccurrence.status).in_(ACTIVE),
                col(SessionOccurrence.ends_at) > now,
            )
            .order_by(col(SessionOccurrence.starts_at))
            .limit(per_series)
        ).all()
        if occs:
            out.append((row, list(occs)))
    return sorted(out, key=lambda pair: pair[1][0].starts_at)


# --- reminders ------------------------------------------------------------------------------------


def reminder_at(occ: SessionOccurrence, kind: str) -> datetime:
    return occ.starts_at - REMINDER_LEADS[kind]


def reminder_grace(kind: str) -> timedelta:
    """How late a reminder may still go: the day-before one until the 15-minute one is due, the
    15-minute one until the session starts (after that, the opening says it all)."""
    return REMINDER_LEADS[kind] - min(REMINDER_LEADS.values()) if kind == "day" else REMINDER_LEADS[kind]


def opt_in(s: Session, user: str, series_id: str, now: datetime) -> SessionSeries:
    row = series(s, series_id)
    if row.ended_at is not None:
        raise SessionError(f"{row.title} has ended; !sessions lists the sessions still running.")
    if s.get(SessionReminder, (user, row.id)) is None:
        s.add(SessionReminder(user_id=user, series_id=row.id, created_at=now))
    return row


def opt_out(s: Session, user: str, series_id: str | None) -> int:
    q = delete(SessionReminder).where(col(SessionReminder.user_id) == user)
    if series_id is not None:
        q = q.where(col(SessionReminder.series_id) == series_id.strip().lower())
    return int(getattr(s.execute(q), "rowcount", 0) or 0)


def reminded_series(s: Session, user: str) -> set[str]:
    return {r.series_id for r in s.exec(select(SessionReminder).where(SessionReminder.user_id == user))}


def subscribers(s: Session, series_id: str) -> list[str]:
    q = select(SessionReminder).where(SessionReminder.series_id == series_id)
    return [r.user_id for r in s.exec(q.order_by(col(SessionReminder.created_at)))]


def claim_reminder(
    s: Session, occ_id: str, kind: str, now: datetime
) -> tuple[SessionOccurrence, SessionSeries] | None:
    """Mark the ``kind`` reminder of an occurrence as going out now; None when it went already, or the
    session is not coming any more (cancelled, ended, or its series ended)."""
    occ = s.get(SessionOccurrence, occ_id)
    if occ is None or occ.status != "scheduled" or now >= occ.starts_at:
        return None
    row = s.get(SessionSeries, occ.series_id)
    if row is None or row.ended_at is not None:
        return None
    field = "reminded_day_at" if kind == "day" else "reminded_soon_at"
    if getattr(occ, field) is not None:
        return None
    setattr(occ, field, now)
    s.add(occ)
    return occ, row


# --- attendance -----------------------------------------------------------------------------------


def attend(
    s: Session, occ: SessionOccurrence, user: str, *, joined: bool, posted: bool, now: datetime
) -> None:
    """Count ``user`` in the session's attendance: joined the room during it and/or posted while it
    was open (each once). Only that they came, never what they wrote."""
    row = s.get(SessionAttendee, (occ.id, user))
    if row is None:
        row = SessionAttendee(occurrence_id=occ.id, user_id=user)
    if joined and row.joined_at is None:
        row.joined_at = now
        occ.joined += 1
    if posted and row.posted_at is None:
        row.posted_at = now
        occ.posted += 1
    s.add(row)
    s.add(occ)


def purge_attendance(s: Session, before: datetime) -> int:
    """Forget who came to sessions that ended before ``before`` (the counts stay on the session)."""
    old = select(SessionOccurrence.id).where(col(SessionOccurrence.ends_at) < before)
    res = s.execute(delete(SessionAttendee).where(col(SessionAttendee.occurrence_id).in_(old)))
    return int(getattr(res, "rowcount", 0) or 0)


def recent(s: Session, series_id: str, now: datetime, limit: int = 5) -> list[SessionOccurrence]:
    """The series' last sessions that have ended or are on, newest first (attendance figures)."""
    q = (
        select(SessionOccurrence)
        .where(SessionOccurrence.series_id == series_id, col(SessionOccurrence.starts_at) <= now)
        .order_by(col(SessionOccurrence.starts_at).desc())
        .limit(limit)
    )
    return list(s.exec(q))


# --- graded exposure: a member's private level -----------------------------------------------------


def ladder(theme: Theme) -> Exposure | None:
    """The space's graded-exposure ladder (its practice room's), if it has one."""
    return next((r.scene.exposure for r in theme.rooms if r.scene.exposure is not None), None)


def levels(s: Session, user: str) -> dict[str, str]:
    """The member's own level per space (shown to them alone)."""
    return {r.space: r.level for r in s.exec(select(ExposureLevel).where(ExposureLevel.user_id == user))}


def set_level(s: Session, user: str, space: str, level: str | None, now: datetime) -> None:
    row = s.get(ExposureLevel, (user, space))
    if level is None:
        if row is not None:
            s.delete(row)
        return
    if row is None:
        row = ExposureLevel(user_id=user, space=space, level=level, updated_at=now)
    row.level, row.updated_at = level, now
    s.add(row)


# --- a member's own data --------------------------------------------------------------------------


def member_tables() -> dict[str, type]:
    """What sessions keep about a member, by the name ``!mydata`` gives it."""
    return {
        "session_reminders": SessionReminder,
        "sessions_attended": SessionAttendee,
        "exposure_levels": ExposureLevel,
    }


def erase_member(s: Session, user: str) -> dict[str, int]:
    """``!forgetme``: delete the member's opt-ins, attendance and levels (the counts stay)."""
    out = {}
    for name, table in member_tables().items():
        res = s.execute(delete(table).where(table.user_id == user))  # type: ignore[attr-defined]
        out[name] = int(getattr(res, "rowcount", 0) or 0)
    return out
