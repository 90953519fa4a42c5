"""Moderation tables: one decision per screened event, and messages flagged for human review.

``ModerationDecision`` holds no message text, only what caused the decision (labels, scores, rules,
evidence offsets) so a moderator can see why. ``FlaggedMessage`` keeps the text only because a
moderator must read it, and only until ``purge_after``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Text
from sqlmodel import Field, SQLModel


class ModerationDecision(SQLModel, table=True):
    """The verdict for one event, keyed by event ID so the bot never screens a message twice."""

    __tablename__ = "moderation_decision"

    event_id: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(index=True, max_length=255)
    sender: str = Field(max_length=255)
    profile: str = Field(max_length=64)
    dispositions: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    signals: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    timings: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    errors: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    decided_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    source: str = Field(max_length=16)  # gate | rescreen
    acted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class FlaggedMessage(SQLModel, table=True):
    """A message waiting for a moderator's review; its text is purged after ``purge_after``."""

    __tablename__ = "flagged_message"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True, max_length=255)
    room_id: str = Field(max_length=255)
    sender: str = Field(max_length=255)
    body: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(max_length=512)
    status: str = Field(default="open", max_length=16)  # open | reviewed
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    purge_after: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
