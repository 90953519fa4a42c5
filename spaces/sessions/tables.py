"""Group sessions' tables: series (from themes or moderators), their dated occurrences (the deadlines
the scheduler's jobs are rebuilt from), facilitators, members' reminder opt-ins, attendance (who,
never what they wrote; purged after ``sessions.attendance_retention_days``, the counts stay) and a
member's private level on a graded-exposure ladder. Times are aware UTC; a series' own wall-clock
start is kept with its zone (``first_local`` + ``timezone``), so it is shown in the session's zone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from config.columns import UTCDateTime


class SessionSeries(SQLModel, table=True):
    """A recurring (or one-off) facilitated session in a group-session room."""

    __tablename__ = "session_series"

    id: str = Field(primary_key=True, max_length=16)  # short, typed in commands: "!remind a3f9c1"
    space: str = Field(index=True, max_length=64)
    room_alias: str = Field(index=True, max_length=255)
    # "<theme>/<session slug>" for a theme's session (synced by `hearth spaces apply`); None when a
    # moderator added it (`!session add`).
    theme_key: str | None = Field(default=None, max_length=140, unique=True)
    title: str = Field(max_length=200)
    format: str = Field(max_length=32)  # peer-group | guided-exercise | exposure-practice
    led_by: str = Field(max_length=200)  # who leads, in words ("a physiotherapist")
    description: str = Field(default="", sa_type=Text())
    timezone: str = Field(max_length=64)
    rule: str = Field(max_length=500)  # RFC 5545 RRULE, expanded in `timezone` from `first_local`
    first_local: str = Field(max_length=32)  # ISO wall-clock date-time of the first start
    duration_minutes: int
    created_by: str = Field(max_length=255)  # "theme" or the moderator's Matrix ID
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class SessionFacilitator(SQLModel, table=True):
    """Someone named to lead a series (staff or not: a physiotherapist, a trained volunteer)."""

    __tablename__ = "session_facilitator"

    series_id: str = Field(primary_key=True, max_length=16)
    user_id: str = Field(primary_key=True, max_length=255)
    added_by: str = Field(max_length=255)
    added_at: datetime = Field(sa_type=UTCDateTime())


class SessionOccurrence(SQLModel, table=True):
    """One dated session. ``status``: scheduled -> open (started, a facilitator present) -> closed,
    or scheduled -> missed (it ended without opening), or cancelled by a moderator."""

    __tablename__ = "session_occurrence"
    __table_args__ = (UniqueConstraint("series_id", "starts_at", name="uq_session_occurrence_start"),)

    id: str = Field(primary_key=True, max_length=40)  # "<series>-<UTC start>", e.g. a3f9c1-20260107T1900Z
    series_id: str = Field(index=True, max_length=16)
    starts_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    status: str = Field(default="scheduled", max_length=16, index=True)
    present_at: datetime | None = Field(default=None, sa_type=UTCDateTime())  # a facilitator arrived
    present_by: str | None = Field(default=None, max_length=255)
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    reminded_day_at: datetime | None = Field(default=None, sa_type=UTCDateTime())  # 24 h before
    reminded_soon_at: datetime | None = Field(default=None, sa_type=UTCDateTime())  # 15 min before
    joined: int = 0  # members who joined the room while it was on
    posted: int = 0  # members who posted while it was open


class SessionAttendee(SQLModel, table=True):
    """Who came to one session (joined during it and/or posted while it was open): no text, ever."""

    __tablename__ = "session_attendee"

    occurrence_id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(primary_key=True, max_length=255, index=True)
    joined_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    posted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class SessionReminder(SQLModel, table=True):
    """A member's opt-in to a series' reminders (``!remind <id>``; ``!remind off`` removes it)."""

    __tablename__ = "session_reminder"

    user_id: str = Field(primary_key=True, max_length=255)
    series_id: str = Field(primary_key=True, max_length=16, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime())


class ExposureLevel(SQLModel, table=True):
    """A member's current level on a space's graded-exposure ladder (``!level``): private to them,
    never shown to anyone else or put in any room."""

    __tablename__ = "exposure_level"

    user_id: str = Field(primary_key=True, max_length=255)
    space: str = Field(primary_key=True, max_length=64)
    level: str = Field(max_length=40)
    updated_at: datetime = Field(sa_type=UTCDateTime())
