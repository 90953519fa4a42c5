"""Catalogue tables: what provisioning created (spaces, rooms) and which media it uploaded.

These record Hearth's own view for the dashboard, the gate (room capacity and profile lookups) and
media reuse by content hash; the homeserver stays the source of truth for room state, which
plan/apply always re-reads. Timestamps are aware UTC datetimes passed in by ``bridge``.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class ProvisionedSpace(SQLModel, table=True):
    """One Matrix space created for a theme."""

    __tablename__ = "provisioned_space"

    theme_slug: str = Field(primary_key=True, max_length=64)
    room_id: str = Field(index=True, unique=True, max_length=255)
    alias: str = Field(max_length=255)
    theme_version: int
    # The theme's region (its crisis lines; the help its members are offered), None: operator default.
    region: str | None = Field(default=None, max_length=8)
    updated_at: datetime


class ProvisionedRoom(SQLModel, table=True):
    """One room of a space, with what the gate needs to enforce: capacity, profile, posting."""

    __tablename__ = "provisioned_room"

    alias: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(index=True, unique=True, max_length=255)
    space_slug: str = Field(index=True, max_length=64)
    room_slug: str = Field(max_length=64)
    # The theme's room kind (welcome, group-session, practice, ...): which rooms hold sessions.
    kind: str = Field(default="", max_length=32)
    capacity: int
    profile: str = Field(max_length=32)
    members_may_post: bool
    updated_at: datetime


class UploadedMedia(SQLModel, table=True):
    """A file uploaded to the media repository, keyed by the SHA-256 of its bytes (reused, never re-sent)."""

    __tablename__ = "uploaded_media"

    sha256: str = Field(primary_key=True, max_length=64)
    mxc: str = Field(max_length=255)
    content_type: str = Field(max_length=100)
    created_at: datetime
