"""Casework's tables: review cases (flags and reports), the reports behind them, sanctions with
their expiry, appeals and moderators' notes. A case holds no message text: the excerpt a moderator
reviews is the ``flagged_message`` row of the same event, purged on schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Text
from sqlmodel import Field, SQLModel

from config.columns import UTCDateTime
from moderation.casework.types import AppealStatus, CaseStatus


class ModCase(SQLModel, table=True):
    """One message in the moderators' review queue (flagged by the pipeline or reported)."""

    __tablename__ = "mod_case"

    id: str = Field(primary_key=True, max_length=16)  # "M-7K3QX2"
    kind: str = Field(max_length=16)
    status: str = Field(default=CaseStatus.OPEN.value, max_length=16, index=True)
    room_id: str = Field(max_length=255)
    event_id: str = Field(max_length=255, index=True)
    subject: str = Field(max_length=255, index=True)  # the member whose message it is
    space: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=512)  # in words ("reported: harassment")
    signals: list[str] = Field(default_factory=list, sa_type=JSON())  # labels that caused a flag
    priority: int = Field(default=1)  # higher first in the queue
    reports: int = Field(default=0)
    held: int = Field(default=1)  # messages refused at the gate on a held case (a burst is one case)
    trusted_reports: int = Field(default=0)  # reports by members with a record of upheld reports
    hidden_at: datetime | None = Field(default=None, sa_type=UTCDateTime())  # redacted until decided
    card_event_id: str | None = Field(default=None, max_length=255, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    updated_at: datetime = Field(sa_type=UTCDateTime())
    decided_by: str | None = Field(default=None, max_length=255)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    decision: str | None = Field(default=None, max_length=512)


class ModReport(SQLModel, table=True):
    """One report of a message. ``source_key`` dedupes: ``synapse:<report id>`` for the Matrix report
    API (read from Synapse's admin API), ``reply:<event id>`` for ``!report``."""

    __tablename__ = "mod_report"

    source_key: str = Field(primary_key=True, max_length=300)
    synapse_id: int | None = Field(default=None, index=True)
    case_id: str = Field(foreign_key="mod_case.id", index=True, max_length=16)
    reporter: str = Field(max_length=255)
    subject: str = Field(max_length=255, index=True)
    reason: str = Field(default="", max_length=512)  # the reporter's words (not the message's)
    trusted: bool = Field(default=False)  # the reporter had a record of upheld reports when they reported
    received_at: datetime = Field(sa_type=UTCDateTime())


class Sanction(SQLModel, table=True):
    """A warning, mute or ban of a member across a space (or every space), until ``expires_at``
    (None: until lifted). ``rooms`` lists the rooms a ban covers (recorded before banning), so lifting it undoes
    exactly those."""

    __tablename__ = "sanction"

    id: str = Field(primary_key=True, max_length=16)  # "S-7K3QX2"
    user_id: str = Field(max_length=255, index=True)
    kind: str = Field(max_length=16)
    scope: str = Field(max_length=64)  # a space slug, or "*" for every space
    reason: str = Field(default="", max_length=512)
    by: str = Field(max_length=255)
    case_id: str | None = Field(default=None, max_length=16)
    rooms: list[str] = Field(default_factory=list, sa_type=JSON())
    created_at: datetime = Field(sa_type=UTCDateTime())
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), index=True)
    ended_by: str | None = Field(default=None, max_length=255)
    end_reason: str | None = Field(default=None, max_length=64)  # expired | lifted | appeal


class Appeal(SQLModel, table=True):
    """A member's appeal of a sanction; decided by a moderator other than the one who acted. The
    member's own words are kept for the moderators until ``purge_after``."""

    __tablename__ = "appeal"

    id: str = Field(primary_key=True, max_length=16)  # "A-7K3QX2"
    sanction_id: str = Field(foreign_key="sanction.id", index=True, max_length=16)
    user_id: str = Field(max_length=255, index=True)
    text: str = Field(default="", sa_type=Text())
    status: str = Field(default=AppealStatus.OPEN.value, max_length=16, index=True)
    card_event_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_type=UTCDateTime())
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    decided_by: str | None = Field(default=None, max_length=255)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    note: str | None = Field(default=None, max_length=1000)
    purge_after: datetime = Field(sa_type=UTCDateTime())


class ModNote(SQLModel, table=True):
    """A moderator's note on a member, with labels (``#spam``, ``#vulnerable``)."""

    __tablename__ = "mod_note"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=255, index=True)
    by: str = Field(max_length=255)
    text: str = Field(sa_type=Text())
    labels: list[str] = Field(default_factory=list, sa_type=JSON())
    created_at: datetime = Field(sa_type=UTCDateTime())


class ModAudit(SQLModel, table=True):
    """One moderator action (or the bot's, as ``hearth``), append-only, without message text: what the
    audit log shows and exports."""

    __tablename__ = "mod_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime(), index=True)
    actor: str = Field(max_length=255)
    action: str = Field(
        max_length=32
    )  # dismiss, redact, warn, mute, ban, unmute, unban, expire, note, appeal_*
    subject: str | None = Field(default=None, max_length=255, index=True)
    case_id: str | None = Field(default=None, max_length=16)
    sanction_id: str | None = Field(default=None, max_length=16)
    appeal_id: str | None = Field(default=None, max_length=16)
    detail: str = Field(default="", max_length=1000)


def as_dict(row: SQLModel) -> dict[str, Any]:
    """A row as plain JSON-able values (datetimes as ISO 8601)."""
    out: dict[str, Any] = {}
    for key, value in row.model_dump().items():
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out
