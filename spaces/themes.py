"""Support-space themes: load and validate ``config/spaces/*.toml``.

A theme describes one Matrix space (a support community such as "Anxiety & panic") and its rooms.
Loading is all-or-nothing: if any file is invalid, :func:`load_themes` raises :class:`ThemeError`
naming the file, the key path (for example ``rooms[2].scene.capacity``) and the reason, and returns
nothing, so provisioning never runs on half a catalogue.

Moderation profiles
-------------------
Each room names one of a small, fixed set of moderation profiles. The moderation package maps a
profile to its policy table; the names and their intent are fixed here so themes cannot drift:

``support``
    The default for peer conversation. Abuse aimed at others is blocked before delivery; casual
    profanity, grief, anger and talk about one's own history pass; crisis signals escalate.
``peer-strict``
    For rooms where members are most exposed (trauma, recovery, facilitated groups): as ``support``
    plus graphic detail (self-harm method, substance use specifics, trauma detail) is held for review,
    and links or media from new members are held.
``quiet``
    For low-traffic, low-stimulation rooms: as ``support`` with tighter flood and mention limits and
    no media from new members, so the room stays calm.
``announcements``
    For read-only rooms (the welcome room): only staff and the bot post; anything else is refused.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.ids import RoomAlias
from config.resources import CrisisResources, ResourceConfigError, load_crisis_resources
from spaces.sessions.recurrence import Recurrence, RecurrenceError, first_local_for, parse_repeat

DEFAULT_THEMES_DIR = Path(__file__).resolve().parent.parent / "config" / "spaces"

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"

MODERATION_PROFILES: dict[str, str] = {
    "support": "Peer conversation: abuse at others blocked, crisis escalated, ordinary hard talk passes.",
    "peer-strict": "Exposed rooms: as support, plus graphic detail and new members' links held for review.",
    "quiet": "Low-stimulation rooms: as support, with tighter flood/mention limits and no new-member media.",
    "announcements": "Read-only rooms: only staff and the bot post.",
}

PRESETS: tuple[str, ...] = (
    "calm-beach",
    "forest-clearing",
    "fireside-circle",
    "garden",
    "rehab-gym",
    "quiet-library",
)

REQUIRED_ROOM_KINDS: tuple[str, ...] = ("welcome", "check-in", "discussion", "group-session", "quiet")

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, min_length=1, max_length=40)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]

Preset = Literal[
    "calm-beach",
    "forest-clearing",
    "fireside-circle",
    "garden",
    "rehab-gym",
    "quiet-library",
    "consultation-office",
]
# "care" is the private care room of a crisis case (spaces/care_room.py), never a theme's room.
RoomKind = Literal[
    "welcome", "check-in", "discussion", "group-session", "practice", "quiet", "resources", "care"
]
ModerationProfile = Literal["support", "peer-strict", "quiet", "announcements"]
JoinRule = Literal["restricted", "knock", "knock_restricted"]
HistoryVisibility = Literal["shared", "joined", "invited"]
RoomVersion = Literal["10", "11", "12"]
Purpose = Literal[
    "orientation",
    "check-in",
    "discussion",
    "group-session",
    "quiet-reflection",
    "graded-exposure",
    "resources",
    "consultation",
]
LayoutKind = Literal["circle", "semicircle", "rows", "scattered", "pairs", "stations"]
ComfortRating = Literal["comfortable", "moderate", "intense"]
ReferenceSpace = Literal["viewer", "local", "local-floor", "bounded-floor", "unbounded"]
Locomotion = Literal["teleport", "smooth", "snap-turn"]
FacilitationMode = Literal["self-guided", "peer-led", "moderator-hosted", "clinician-facilitated"]
# peer-group: a facilitated peer circle; guided-exercise: movement led by a named facilitator (a
# physiotherapist), never opened by a stand-in; exposure-practice: graded practice together, each at
# their own private level (!level).
SessionFormat = Literal["peer-group", "guided-exercise", "exposure-practice"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrisisResource(_Strict):
    """A way to reach urgent help, shown in every room's facilitation notice. Filled in from the
    helpline catalogue (``config/crisis_resources.toml``) at load; theme files list none."""

    label: ShortText
    contact: Annotated[str, Field(min_length=1, max_length=500)]
    region: ShortText = "international"
    url: str | None = Field(default=None, pattern=r"^https://")


class ThemeFacilitation(_Strict):
    """Theme-wide facilitation text: the not-therapy notice and crisis resources."""

    not_therapy_notice: LongText
    crisis_resources: list[CrisisResource] = Field(min_length=1)


class RoomFacilitation(_Strict):
    """How a room is held: self-guided, peer-led, hosted by a moderator or facilitated by a clinician."""

    mode: FacilitationMode = "peer-led"
    note: str | None = Field(default=None, max_length=500)


class SpawnGroup(_Strict):
    """A named set of arrival points (e.g. ``arrivals``, ``facilitator``)."""

    id: Slug
    label: ShortText
    points: int = Field(default=2, ge=1, le=8)


def _default_spawn_groups() -> list[SpawnGroup]:
    return [SpawnGroup(id="arrivals", label="Arrivals", points=2)]


class Layout(_Strict):
    """How seats are arranged; positions are computed from ``kind`` and ``seats``."""

    kind: LayoutKind = "circle"
    seats: int = Field(ge=1, le=64)
    spawn_groups: list[SpawnGroup] = Field(default_factory=_default_spawn_groups, min_length=1)

    @model_validator(mode="after")
    def _unique_groups(self) -> Layout:
        ids = [g.id for g in self.spawn_groups]
        if len(ids) != len(set(ids)):
            raise ValueError(f"spawn group ids must be unique, got {ids}")
        return self


def _default_locomotion() -> list[Locomotion]:
    return ["teleport", "snap-turn"]


class Comfort(_Strict):
    """Comfort settings for immersive clients; defaults are the gentlest sensible choice."""

    rating: ComfortRating = "comfortable"
    seated_mode: bool = True
    webxr_reference_space: ReferenceSpace = "local-floor"
    locomotion_allowed: list[Locomotion] = Field(default_factory=_default_locomotion)
    vignette: bool = True
    flashing: Literal["none"] = "none"
    ambient_audio_mutable: Literal[True] = True
    mono_audio: bool = True
    captions: bool = True
    session_length_minutes: int = Field(default=60, ge=5, le=240)
    break_reminder_minutes: int = Field(default=20, ge=5, le=120)
    safe_place_room: Slug | None = None

    @model_validator(mode="after")
    def _break_within_session(self) -> Comfort:
        if self.break_reminder_minutes > self.session_length_minutes:
            raise ValueError(
                f"break_reminder_minutes ({self.break_reminder_minutes}) must not exceed "
                f"session_length_minutes ({self.session_length_minutes})"
            )
        if "smooth" in self.locomotion_allowed and not self.vignette:
            raise ValueError("smooth locomotion needs vignette = true (reduces motion sickness)")
        return self


class ExposureLevel(_Strict):
    """One step of a graded-exposure ladder."""

    id: Slug
    label: ShortText
    description: LongText


class Exposure(_Strict):
    """A graded-exposure ladder; members choose the level and can always leave."""

    stimulus: ShortText
    levels: list[ExposureLevel] = Field(min_length=2, max_length=8)
    default_level: Slug
    exit_always_available: Literal[True] = True

    @model_validator(mode="after")
    def _default_is_a_level(self) -> Exposure:
        ids = [lv.id for lv in self.levels]
        if len(ids) != len(set(ids)):
            raise ValueError(f"exposure level ids must be unique, got {ids}")
        if self.default_level not in ids:
            raise ValueError(f"default_level {self.default_level!r} is not one of the levels {ids}")
        if self.default_level != ids[0]:
            raise ValueError("default_level must be the first (gentlest) level: nobody starts mid-ladder")
        return self


class Scene(_Strict):
    """The 3D scene a room is rendered as."""

    preset: Preset
    purpose: Purpose
    description: LongText
    capacity: int = Field(ge=2, le=200)
    layout: Layout
    comfort: Comfort = Field(default_factory=Comfort)
    exposure: Exposure | None = None
    content_warnings: list[ShortText] = Field(default_factory=list)
    facilitation: RoomFacilitation = Field(default_factory=RoomFacilitation)

    @model_validator(mode="after")
    def _exposure_matches_purpose(self) -> Scene:
        if (self.exposure is not None) != (self.purpose == "graded-exposure"):
            raise ValueError("exposure must be given exactly when purpose is 'graded-exposure'")
        return self


class SessionSpec(_Strict):
    """A recurring facilitated session a theme schedules in its group-session room.

    ``repeat`` in words (``weekly wed``, ``fortnightly tue``, ``monthly 1st mon``, ``once``, or
    ``rrule:...``; see ``spaces.sessions.recurrence``), from ``first_date`` at ``start_time``
    wall-clock time in ``timezone``.
    """

    slug: Slug
    title: ShortText
    format: SessionFormat = "peer-group"
    led_by: ShortText
    description: str | None = Field(default=None, min_length=1, max_length=1000)
    timezone: ShortText
    repeat: ShortText
    first_date: date
    start_time: time
    duration_minutes: int = Field(ge=10, le=240)

    @model_validator(mode="after")
    def _valid_timing(self) -> SessionSpec:
        self.recurrence()  # RecurrenceError (a ValueError) names the problem
        return self

    def recurrence(self) -> Recurrence:
        """The session's timing (``RecurrenceError`` if the zone or repeat cannot be used)."""
        try:
            rule = parse_repeat(self.repeat, self.first_date)
            first = first_local_for(self.first_date, self.start_time)
            return Recurrence(rule, self.timezone, first, _minutes(self.duration_minutes))
        except RecurrenceError as e:
            raise ValueError(str(e)) from None


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


class Room(_Strict):
    """One room of a support space."""

    slug: Slug
    kind: RoomKind
    name: ShortText
    topic: Annotated[str, Field(min_length=1, max_length=500)]
    join_rule: JoinRule = "restricted"
    history_visibility: HistoryVisibility = "shared"
    members_may_post: bool = True
    moderation_profile: ModerationProfile = "support"
    suggested: bool = False
    scene: Scene
    # Markdown Hearth posts and pins in the room (a quiet room's breathing or grounding guide).
    guide: LongText | None = None
    # Facilitated sessions held here (group-session rooms only): read-only for members between them.
    sessions: list[SessionSpec] = Field(default_factory=list)


class Theme(_Strict):
    """A support space and its rooms, as written in one ``config/spaces/<slug>.toml`` file."""

    slug: Slug
    name: ShortText
    description: LongText
    audience: LongText
    guidelines: LongText
    version: int = Field(ge=1)
    room_version: RoomVersion = "10"
    # The country the space serves (ISO 3166-1 alpha-2, a region of config/crisis_resources.toml):
    # its crisis lines, and the help a member in crisis here is offered. None: the operator's default.
    region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    facilitation: ThemeFacilitation
    rooms: list[Room] = Field(min_length=len(REQUIRED_ROOM_KINDS))

    def room(self, slug: str) -> Room:
        """The room with this slug (``KeyError`` if the theme has none)."""
        for room in self.rooms:
            if room.slug == slug:
                return room
        raise KeyError(slug)

    def room_of_kind(self, kind: str) -> Room:
        """The first room of this kind (``KeyError`` if the theme has none)."""
        for room in self.rooms:
            if room.kind == kind:
                return room
        raise KeyError(kind)

    def safe_place_for(self, room: Room) -> Room:
        """The room a member can step out to from ``room``: explicit, else the quiet room.

        The quiet room's own safe place defaults to the welcome room.
        """
        if room.scene.comfort.safe_place_room is not None:
            return self.room(room.scene.comfort.safe_place_room)
        quiet = self.room_of_kind("quiet")
        return self.room_of_kind("welcome") if quiet.slug == room.slug else quiet


class ThemeError(ValueError):
    """A theme file is invalid; the message names the file, the key path and the reason."""

    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {reason}")


def _key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("literal", "function-after", "function-before") or part.startswith("literal["):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _cross_checks(theme: Theme) -> list[tuple[str, str]]:
    """Rules spanning several rooms; returns (key path, reason) pairs."""
    problems: list[tuple[str, str]] = []
    slugs = [r.slug for r in theme.rooms]
    for i, slug in enumerate(slugs):
        if slugs.index(slug) != i:
            problems.append((f"rooms[{i}].slug", f"duplicate room slug {slug!r}"))
    session_slugs = [spec.slug for r in theme.rooms for spec in r.sessions]
    for slug in sorted({x for x in session_slugs if session_slugs.count(x) > 1}):
        problems.append(("rooms", f"session slug {slug!r} is used twice: each session needs its own"))
    kinds = {r.kind for r in theme.rooms}
    for kind in REQUIRED_ROOM_KINDS:
        if kind not in kinds:
            problems.append(("rooms", f"every space needs a {kind!r} room (rooms with kind = {kind!r})"))
    for i, room in enumerate(theme.rooms):
        if room.kind == "welcome":
            if room.members_may_post:
                problems.append((f"rooms[{i}].members_may_post", "the welcome room is read-only for members"))
            if room.join_rule != "restricted":
                problems.append(
                    (f"rooms[{i}].join_rule", "the welcome room must be open to all space members")
                )
        if room.kind == "group-session" and room.members_may_post:
            problems.append(
                (
                    f"rooms[{i}].members_may_post",
                    "a group-session room is read-only between its sessions (they open it): set false",
                )
            )
        if room.sessions and room.kind != "group-session":
            problems.append((f"rooms[{i}].sessions", "sessions are held in group-session rooms only"))
        for j, spec in enumerate(room.sessions):
            if spec.format == "exposure-practice" and not any(r.scene.exposure for r in theme.rooms):
                problems.append(
                    (
                        f"rooms[{i}].sessions[{j}].format",
                        "exposure-practice needs a graded-exposure ladder in this space (a practice room)",
                    )
                )
        safe = room.scene.comfort.safe_place_room
        if safe is not None:
            if safe not in slugs:
                problems.append(
                    (f"rooms[{i}].scene.comfort.safe_place_room", f"no room with slug {safe!r} in this theme")
                )
            elif safe == room.slug:
                problems.append(
                    (f"rooms[{i}].scene.comfort.safe_place_room", "a room cannot be its own safe place")
                )
        if room.scene.capacity < room.scene.layout.seats and room.scene.layout.kind != "scattered":
            problems.append(
                (
                    f"rooms[{i}].scene.layout.seats",
                    f"{room.scene.layout.seats} seats for a capacity of {room.scene.capacity}",
                )
            )
    return problems


def parse_theme(
    data: dict[str, Any],
    file: Path | str = "<theme>",
    resources: CrisisResources | None = None,
    default_region: str | None = None,
) -> Theme:
    """Validate one theme's decoded TOML; raises :class:`ThemeError` on the first problem.

    Its crisis lines are filled in from ``resources`` (the helpline catalogue, by default
    ``config/crisis_resources.toml``) for the theme's ``region``, else ``default_region``.
    """
    data = _with_crisis_lines(data, file, resources, default_region)
    try:
        theme = Theme.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ThemeError(file, _key_path(err["loc"]), err["msg"]) from None
    problems = _cross_checks(theme)
    if problems:
        key, reason = problems[0]
        raise ThemeError(file, key, reason)
    return theme


def _with_crisis_lines(
    data: dict[str, Any], file: Path | str, resources: CrisisResources | None, default_region: str | None
) -> dict[str, Any]:
    facilitation = data.get("facilitation")
    if not isinstance(facilitation, dict):
        return data  # the model reports the missing or malformed table
    if "crisis_resources" in facilitation:
        raise ThemeError(
            file,
            "facilitation.crisis_resources",
            "crisis lines come from the one helpline catalogue, config/crisis_resources.toml: remove this "
            "key (set the space's country with `region`, and a line for this theme with `themes` there)",
        )
    resources = resources or _default_catalogue(file)
    region = data.get("region")
    if isinstance(region, str) and resources.known(region) != region:
        raise ThemeError(
            file, "region", f"{region!r} has no lines in the helpline catalogue: use one of {resources.codes}"
        )
    slug = data.get("slug") if isinstance(data.get("slug"), str) else None
    lines = resources.pinned_lines(region if isinstance(region, str) else default_region, slug)
    return {**data, "facilitation": {**facilitation, "crisis_resources": lines}}


def _default_catalogue(file: Path | str) -> CrisisResources:
    try:
        return load_crisis_resources()
    except ResourceConfigError as e:
        raise ThemeError(file, "", f"the helpline catalogue cannot be read: {e}") from None


def load_theme(
    path: Path, resources: CrisisResources | None = None, default_region: str | None = None
) -> Theme:
    """Read and validate one theme file; the slug must match the file name."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(path, "", f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ThemeError(path, "", f"cannot read file: {exc.strerror}") from None
    theme = parse_theme(data, path, resources, default_region)
    if theme.slug != path.stem:
        raise ThemeError(path, "slug", f"slug {theme.slug!r} must match the file name {path.stem!r}")
    return theme


def load_themes(
    directory: Path = DEFAULT_THEMES_DIR,
    resources: CrisisResources | None = None,
    default_region: str | None = None,
) -> list[Theme]:
    """Load every ``*.toml`` theme in ``directory`` (sorted by slug); all or nothing.

    Crisis lines come from ``resources`` (default: ``config/crisis_resources.toml``), whose
    theme-specific lines must each name a theme here. Raises :class:`ThemeError` if any file is
    invalid, the catalogue names an unknown theme, or the directory holds no themes.
    """
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ThemeError(directory, "", "no theme files (*.toml) found")
    resources = resources or _default_catalogue(directory)
    if default_region is not None and resources.known(default_region) != default_region:
        raise ThemeError(
            directory, "", f"default region {default_region!r} has no lines in the helpline catalogue"
        )
    themes = [load_theme(f, resources, default_region) for f in files]
    try:
        resources.check_themes({t.slug for t in themes})
    except ResourceConfigError as e:
        raise ThemeError(directory, "", str(e)) from None
    return sorted(themes, key=lambda t: t.slug)


def space_alias(theme: Theme, server_name: str) -> RoomAlias:
    """The space's alias: ``#<theme-slug>:<server>``."""
    return RoomAlias(f"#{theme.slug}:{server_name}")


def room_alias(theme: Theme, room: Room, server_name: str) -> RoomAlias:
    """A room's alias: ``#<theme-slug>-<room-slug>:<server>``."""
    return RoomAlias(f"#{theme.slug}-{room.slug}:{server_name}")


def iter_rooms(themes: Iterable[Theme]) -> Iterable[tuple[Theme, Room]]:
    """Every (theme, room) pair in catalogue order."""
    for theme in themes:
        for room in theme.rooms:
            yield theme, room
