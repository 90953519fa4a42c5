"""Casework vocabulary: case kinds and states, sanction kinds, durations, errors and the escalating
default durations. Pure: nothing here reads a clock or a database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from config.sanctions import (
    SanctionDefaults,
    describe_duration,
    looks_like_duration,
    parse_duration,
)

__all__ = [
    "SanctionDefaults",
    "describe_duration",
    "looks_like_duration",
    "parse_duration",
]


class CaseKind(StrEnum):
    FLAG = "flag"  # the pipeline asked for human review
    REPORT = "report"  # a member reported it (Matrix report API or !report)
    HELD = "held"  # refused at the gate and kept for review (never delivered)


class CaseStatus(StrEnum):
    OPEN = "open"
    DISMISSED = "dismissed"  # reviewed: nothing to do
    ACTIONED = "actioned"  # reviewed: a moderator acted (warn, mute, ban, redact)


class SanctionKind(StrEnum):
    WARN = "warn"
    MUTE = "mute"
    BAN = "ban"


class AppealStatus(StrEnum):
    OPEN = "open"
    UPHELD = "upheld"  # the sanction stands
    LIFTED = "lifted"  # the sanction was lifted


ALL_SPACES = "*"  # a sanction's scope: every Hearth space
SYSTEM_ACTOR = "hearth"  # sanctions the policy table imposed (not a person)


MODERATORS_ONLY = "Only moderators (and admins) listed in config/staff.toml can do that."


class CaseworkError(Exception):
    """A moderator's request that cannot be carried out; the message says why, in words."""


class CaseNotFound(CaseworkError):
    pass


class NotPermitted(CaseworkError):
    pass


@dataclass(frozen=True)
class ReporterRecord:
    """How a member's past reports were decided: upheld (the case was actioned) or dismissed."""

    upheld: int
    dismissed: int

    def trusted(self, min_upheld: int, min_share: float) -> bool:
        """A trusted reporter: at least ``min_upheld`` upheld reports, and that share of decided ones."""
        decided = self.upheld + self.dismissed
        return self.upheld >= min_upheld and decided > 0 and self.upheld / decided >= min_share


@dataclass(frozen=True)
class ActiveMute:
    """What the gate needs to refuse a muted member's message kindly."""

    sanction_id: str
    scope: str  # a space slug, or ALL_SPACES
    until: datetime
    reason: str

    def covers(self, space: str | None) -> bool:
        return self.scope == ALL_SPACES or (space is not None and self.scope == space)
