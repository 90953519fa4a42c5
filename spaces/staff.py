"""Staff roster and on-call rota (``config/staff.toml``): load, validate, and ask who is on call.

Pure: :func:`on_call` takes ``now`` (an aware datetime) from the caller; nothing here reads a clock.
"""

from __future__ import annotations

import json
import tomllib
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.ids import UserID

DEFAULT_STAFF_FILE = Path(__file__).resolve().parent.parent / "config" / "staff.toml"

USER_ID_PATTERN = r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::[0-9]{1,5})?$"

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

MatrixUser = Annotated[str, Field(pattern=USER_ID_PATTERN, max_length=255)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


StaffRole = Literal["clinician", "moderator", "admin"]


class StaffMember(_Strict):
    """A moderator or clinician."""

    user_id: MatrixUser
    display_name: Annotated[str, Field(min_length=1, max_length=100)]


class Shift(_Strict):
    """Clinicians on call on ``days`` from ``start`` (inclusive) to ``end`` (exclusive), local hours."""

    days: list[Weekday] = Field(min_length=1)
    start: int = Field(ge=0, le=23)
    end: int = Field(ge=1, le=24)
    clinicians: list[MatrixUser] = Field(min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> Shift:
        if self.start == self.end:
            raise ValueError("a shift cannot start and end at the same hour")
        return self

    def covers(self, weekday: Weekday, hour: int) -> bool:
        """Whether this shift covers ``hour`` (0-23) on ``weekday`` in the rota's time zone."""
        if self.start < self.end:
            return weekday in self.days and self.start <= hour < self.end
        # Overnight: the part before midnight belongs to the listed day, the rest to the next one.
        if weekday in self.days and hour >= self.start:
            return True
        previous = WEEKDAYS[(WEEKDAYS.index(weekday) - 1) % 7]
        return previous in self.days and hour < self.end


class Rota(_Strict):
    """The on-call rota: shifts read in ``timezone``, with a fallback when no shift applies."""

    timezone: str
    fallback: list[MatrixUser] = Field(min_length=1)
    shifts: list[Shift] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The rota's time zone."""
        return ZoneInfo(self.timezone)


class Acknowledge(_Strict):
    """Reactions that count as acknowledging an alert."""

    reactions: list[Annotated[str, Field(min_length=1, max_length=16)]] = Field(min_length=1)

    def accepts(self, key: str) -> bool:
        """Whether a reaction key acknowledges (compared after NFC normalisation, ignoring VS-16)."""

        def norm(s: str) -> str:
            return unicodedata.normalize("NFC", s).replace("\ufe0f", "")

        return norm(key) in {norm(r) for r in self.reactions}


class Staff(_Strict):
    """Everyone with a staff role, the rota and the acknowledgement reactions."""

    moderators: list[StaffMember] = Field(default_factory=list)
    clinicians: list[StaffMember] = Field(min_length=1)
    admins: list[StaffMember] = Field(default_factory=list)
    rota: Rota
    acknowledge: Acknowledge
    # Who is on duty for moderation (review cards mention them); None: every moderator.
    moderator_rota: Rota | None = None

    @model_validator(mode="after")
    def _rota_names_clinicians(self) -> Staff:
        clinicians = {c.user_id for c in self.clinicians}
        everyone = [m.user_id for m in [*self.moderators, *self.clinicians, *self.admins]]
        dupes = sorted({u for u in everyone if everyone.count(u) > 1})
        if dupes:
            raise ValueError(f"staff listed more than once: {dupes}")
        for i, shift in enumerate(self.rota.shifts):
            unknown = [u for u in shift.clinicians if u not in clinicians]
            if unknown:
                raise ValueError(f"rota.shifts[{i}] names people who are not clinicians: {unknown}")
        unknown = [u for u in self.rota.fallback if u not in clinicians]
        if unknown:
            raise ValueError(f"rota.fallback names people who are not clinicians: {unknown}")
        if self.moderator_rota is not None:
            moderators = {m.user_id for m in [*self.moderators, *self.admins]}
            for i, shift in enumerate(self.moderator_rota.shifts):
                unknown = [u for u in shift.clinicians if u not in moderators]
                if unknown:
                    raise ValueError(
                        f"moderator_rota.shifts[{i}] names people who are not moderators or admins: {unknown}"
                    )
            unknown = [u for u in self.moderator_rota.fallback if u not in moderators]
            if unknown:
                raise ValueError(
                    f"moderator_rota.fallback names people who are not moderators or admins: {unknown}"
                )
        return self

    @property
    def moderation_ids(self) -> list[UserID]:
        """Who may act as a moderator (the moderators' room, sanctions, appeals): moderators and admins."""
        return [UserID(m.user_id) for m in [*self.moderators, *self.admins]]

    @property
    def moderation_zone(self) -> ZoneInfo:
        """The moderator rota's time zone (the clinicians' when there is none): how moderation times
        (a sanction's end, a case's) are shown."""
        return (self.moderator_rota or self.rota).zone

    @property
    def protected_ids(self) -> frozenset[str]:
        """Everyone the bot never sanctions: every listed staff member, whatever their role."""
        return frozenset(m.user_id for m in [*self.moderators, *self.clinicians, *self.admins])

    def on_duty_moderators(self, now: datetime) -> list[UserID]:
        """Moderators on duty at ``now``: from ``moderator_rota`` when there is one, else every moderator
        (every admin when there are no moderators)."""
        if self.moderator_rota is not None:
            return on_call(self.moderator_rota, now)
        return self.moderator_ids or [UserID(a.user_id) for a in self.admins]

    @property
    def moderator_ids(self) -> list[UserID]:
        """Moderators' user IDs in file order."""
        return [UserID(m.user_id) for m in self.moderators]

    @property
    def clinician_ids(self) -> list[UserID]:
        """Clinicians' user IDs in file order."""
        return [UserID(c.user_id) for c in self.clinicians]

    @property
    def all_ids(self) -> list[UserID]:
        """Every staff user ID (moderators then clinicians)."""
        return self.moderator_ids + self.clinician_ids

    @property
    def display_names(self) -> dict[str, str]:
        """User ID -> the display name the staff file gives them (how alerts name them)."""
        return {m.user_id: m.display_name for m in [*self.moderators, *self.clinicians, *self.admins]}

    def role_of(self, user_id: str) -> StaffRole | None:
        """``clinician``, ``moderator`` or ``admin`` (each person has one role), or None if not staff."""
        roles: tuple[tuple[StaffRole, list[StaffMember]], ...] = (
            ("clinician", self.clinicians),
            ("moderator", self.moderators),
            ("admin", self.admins),
        )
        for role, people in roles:
            if any(p.user_id == user_id for p in people):
                return role
        return None


class StaffError(ValueError):
    """``staff.toml`` is invalid; the message names the file, the key path and the reason."""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_staff(path: Path = DEFAULT_STAFF_FILE) -> Staff:
    """Read and validate ``staff.toml``; raises :class:`StaffError` naming file, key and reason."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise StaffError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise StaffError(f"{path}: cannot read file: {exc.strerror}") from None
    try:
        return Staff.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise StaffError(f"{path}: {_loc(tuple(err['loc']))}: {err['msg']}") from None


def on_call(rota: Rota, now: datetime) -> list[UserID]:
    """Clinicians on call at ``now`` (aware datetime), in rota order, without duplicates.

    When no shift covers ``now`` the rota's fallback is returned, so the list is never empty.
    """
    if now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise ValueError("on_call needs an aware datetime")
    local = now.astimezone(rota.zone)
    weekday = WEEKDAYS[local.weekday()]
    seen: list[UserID] = []
    for shift in rota.shifts:
        if shift.covers(weekday, local.hour):
            for user in shift.clinicians:
                if user not in seen:
                    seen.append(UserID(user))
    return seen or [UserID(u) for u in rota.fallback]


ROLE_TABLES: dict[str, str] = {"clinician": "clinicians", "moderator": "moderators", "admin": "admins"}


def add_staff_entry(path: Path, user_id: str, role: str, display_name: str) -> Staff:
    """Append ``user_id`` to the staff file under ``role`` (its comments and layout kept), checking
    the whole file still loads before it is written; :class:`StaffError` names file, key and reason."""
    table = ROLE_TABLES.get(role)
    if table is None:
        raise StaffError(f"{path}: role {role!r}: must be one of {sorted(ROLE_TABLES)}")
    current = load_staff(path)
    if current.role_of(user_id) is not None:
        raise StaffError(f"{path}: {user_id} is already listed as {current.role_of(user_id)}")
    text = path.read_text()
    # JSON strings are valid TOML basic strings (quotes, backslashes and control characters escaped).
    entry = f"\n[[{table}]]\nuser_id = {json.dumps(user_id)}\ndisplay_name = {json.dumps(display_name)}\n"
    updated = text.rstrip("\n") + "\n" + entry
    try:
        staff = Staff.model_validate(tomllib.loads(updated))
    except tomllib.TOMLDecodeError as exc:
        raise StaffError(f"{path}: not valid TOML after adding {user_id}: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise StaffError(f"{path}: {_loc(tuple(err['loc']))}: {err['msg']}") from None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(updated)
    tmp.replace(path)
    return staff
