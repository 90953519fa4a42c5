"""Tables the bridge itself owns: the bot's sync position and the ledger of events it has handled."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from config.columns import UTCDateTime


class SyncState(SQLModel, table=True):
    """The bot's ``next_batch`` token, saved after each handled sync so restarts neither replay nor miss."""

    __tablename__ = "sync_state"

    user_id: str = Field(primary_key=True, max_length=255)
    next_batch: str = Field(max_length=512)
    updated_at: datetime


class SeenEvent(SQLModel, table=True):
    """One row per timeline event the bot handled (no message text): makes handling exactly-once."""

    __tablename__ = "seen_event"

    event_id: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(index=True, max_length=255)
    sender: str = Field(max_length=255)
    event_type: str = Field(max_length=255)
    first_seen_at: datetime
    times_seen: int = 1


class RoomMember(SQLModel, table=True):
    """When a member joined a room, as the bot saw it: the behaviour detector's new-member trust period."""

    __tablename__ = "room_member"

    room_id: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(primary_key=True, max_length=255)
    joined_at: datetime


class Mute(SQLModel, table=True):
    """A member muted in a room until ``until`` (their power level was lowered; restored on expiry)."""

    __tablename__ = "mute"

    room_id: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(primary_key=True, max_length=255)
    previous_level: int | None = None
    until: datetime = Field(index=True)
    reason: str = Field(default="", max_length=255)


class MemberRegion(SQLModel, table=True):
    """The country a member chose for their crisis lines (``!region GB`` in their private room with
    the bot); it comes before the space's and the operator's region (``config.resources.choose_region``)."""

    __tablename__ = "member_region"

    user_id: str = Field(primary_key=True, max_length=255)
    region: str = Field(max_length=8)
    updated_at: datetime


class StaffSession(SQLModel, table=True):
    """A staff member's sign-in (Matrix OpenID, ``bridge.web.auth``): the session token is this row's
    ``id`` signed with ``staff_api.session_secret``; signing out revokes the row."""

    __tablename__ = "staff_session"

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(index=True, max_length=255)
    created_at: datetime = Field(sa_type=UTCDateTime())
    expires_at: datetime = Field(sa_type=UTCDateTime())
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class MemberAgreement(SQLModel, table=True):
    """A member's welcome to a space: sent when they first joined one of its rooms, accepted with
    ``!agree`` or a reaction; until then the gate holds their messages in that space (never one read
    as crisis). Members from before welcomes existed have no row and are not held."""

    __tablename__ = "member_agreement"

    user_id: str = Field(primary_key=True, max_length=255)
    space: str = Field(primary_key=True, max_length=64)
    joined_at: datetime = Field(sa_type=UTCDateTime())
    welcome_room_id: str | None = Field(default=None, max_length=255)
    welcome_event_id: str | None = Field(default=None, max_length=255, index=True)
    agreed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class JoinRequest(SQLModel, table=True):
    """A request for a sign-up code held for an operator (``join.require_approval``). Nothing about who
    asked: no address, no name, no text. ``id`` is the asker's secret to poll with; ``reference`` is
    the short number the operator approves or refuses (and the asker may quote to whoever invited
    them). The token made on approval is kept only until it expires; the row until
    ``join.request_expiry_hours`` after it was made."""

    __tablename__ = "join_request"

    id: str = Field(primary_key=True, max_length=64)
    reference: str = Field(max_length=16, unique=True)
    status: str = Field(default="pending", max_length=16)  # pending | approved | refused
    created_at: datetime = Field(sa_type=UTCDateTime())
    expires_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    token: str | None = Field(default=None, max_length=255)
    token_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
