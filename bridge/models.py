"""Tables the bridge itself owns: the bot's sync position and the ledger of events it has handled."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


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
