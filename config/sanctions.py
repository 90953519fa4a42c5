"""Sanction durations as moderators type them (``10m``, ``2h``, ``7d``, ``permanent``) and the
escalating defaults (``[moderation.sanction_defaults]``). Pure and in the config layer, because the
settings validate with it."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^(\d{1,4})(m|h|d|w)$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PERMANENT_WORDS = frozenset({"permanent", "forever", "perm"})
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta | None:
    """``10m``, ``2h``, ``7d``, ``2w`` -> a timedelta; ``permanent`` -> None. ValueError otherwise."""
    value = text.strip().lower()
    if value in PERMANENT_WORDS:
        return None
    m = _DURATION.match(value)
    if m is None:
        raise ValueError(
            f"{text!r} is not a duration: use a number and m, h, d or w (10m, 2h, 7d) or permanent"
        )
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than ten years: say permanent instead")
    return timedelta(seconds=seconds)


def looks_like_duration(text: str) -> bool:
    return text.strip().lower() in PERMANENT_WORDS or _DURATION.match(text.strip().lower()) is not None


def describe_duration(d: timedelta | None) -> str:
    """``timedelta(hours=2)`` -> ``2 hours``; None -> ``permanently``."""
    if d is None:
        return "permanently"
    seconds = int(d.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class SanctionDefaults(BaseModel):
    """Default durations when a moderator gives none, escalating with the member's earlier sanctions
    of the same kind: the n-th mute gets ``mute[n-1]`` (the last entry repeats). ``permanent`` is
    allowed for bans only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mute: list[str] = Field(default_factory=lambda: ["1h", "1d", "7d"], min_length=1)
    ban: list[str] = Field(default_factory=lambda: ["7d", "30d", "permanent"], min_length=1)

    @field_validator("mute", "ban")
    @classmethod
    def _durations(cls, values: list[str]) -> list[str]:
        for v in values:
            parse_duration(v)
        return values

    @field_validator("mute")
    @classmethod
    def _mutes_end(cls, values: list[str]) -> list[str]:
        if any(parse_duration(v) is None for v in values):
            raise ValueError("a mute cannot be permanent (use a ban)")
        return values

    def duration_for(self, kind: str, earlier: int) -> timedelta | None:
        """The default for a member with ``earlier`` mutes (``kind`` "mute") or bans before."""
        steps = self.mute if kind == "mute" else self.ban
        return parse_duration(steps[min(earlier, len(steps) - 1)])
