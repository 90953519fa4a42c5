"""Provisioning as plan/apply: the difference between the themes and what the homeserver holds.

Pure. The executor in ``bridge`` gathers an :class:`Observed` snapshot (for each alias Hearth
manages: its room ID or ``None`` and its current state), uploads the scene media, then calls
:func:`build_plan`. The :class:`Plan` lists ordered :class:`Change` items; applying them and
planning again yields no changes (orphans aside, which are only ever reported).

Room IDs that do not exist yet are written as references (``{{room_id:#alias:server}}``) inside
contents and state keys; the executor applies changes in order, learns each new room's ID and
substitutes it with :func:`resolve_refs` before sending. A room's own create request only refers to
rooms created earlier in the plan (its space); links that point forward (a space's ``m.space.child``
events) become separate ``link_child`` changes after the rooms exist.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from markdown_it import MarkdownIt

from config.ids import RoomAlias, RoomID, UserID
from spaces.scene import (
    HINT_KEY,
    SCENE_EVENT,
    WORLD_EVENT,
    SceneMedia,
    asset_key,
    scene_content,
    space_child_hint,
    world_content,
)
from spaces.staff import Staff
from spaces.themes import Room, Theme, room_alias, space_alias

StateKey = tuple[str, str]
Content = dict[str, Any]

MANAGED_EVENT = "org.hearth.managed"
GUIDELINES_EVENT = "org.hearth.guidelines"
# Which message Hearth keeps pinned for one purpose, one state key each: "guide" (a quiet room's
# breathing or grounding guide), "crisis-lines" (a resources room's), "schedule" (a group-session
# room's sessions). The welcome room's guidelines keep their own GUIDELINES_EVENT marker.
PIN_EVENT = "org.hearth.pin"
STAFF_ROOM_LOCALPART = "hearth-staff"
MODERATORS_ROOM_LOCALPART = "hearth-moderators"

# Room versions whose creators have infinite power and must not be listed in power_levels.users.
CREATOR_POWER_VERSIONS = frozenset({"12"})

# State Hearth owns and compares (besides m.space.child / m.space.parent, keyed by room ID).
MANAGED_EVENT_TYPES: tuple[str, ...] = (
    "m.room.name",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.power_levels",
    "m.space.child",
    "m.space.parent",
    WORLD_EVENT,
    SCENE_EVENT,
    MANAGED_EVENT,
    GUIDELINES_EVENT,
    PIN_EVENT,
    "m.room.pinned_events",
    "m.room.member",
)

# Sent through dedicated createRoom parameters, never in initial_state.
_NOT_INITIAL = frozenset({"m.room.power_levels", "m.room.canonical_alias"})

_REF = re.compile(r"\{\{room_id:(#[^}]+)\}\}")

ChangeKind = Literal[
    "create_space",
    "create_room",
    "set_state",
    "link_child",
    "set_parent",
    "pin",
    "invite",
    "kick",
    "orphan",
]


class PlanError(ValueError):
    """The plan cannot be computed (e.g. scene media missing for an asset key)."""


def room_id_ref(alias: str) -> str:
    """A reference to the (future) room ID of ``alias``, resolved by :func:`resolve_refs`."""
    return f"{{{{room_id:{alias}}}}}"


def refs_in(value: Any) -> set[str]:
    """Aliases referenced anywhere in ``value`` (strings, lists, dict keys and values)."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(_REF.findall(value))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found |= refs_in(k) | refs_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            found |= refs_in(v)
    return found


def resolve_refs(value: Any, ids: Mapping[str, str]) -> Any:
    """``value`` with every room-ID reference replaced from ``ids`` (alias -> room ID).

    Raises ``KeyError`` naming the alias if a reference cannot be resolved.
    """
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in ids:
                raise KeyError(f"room ID of {m.group(1)} is not known yet")
            return ids[m.group(1)]

        return _REF.sub(sub, value)
    if isinstance(value, Mapping):
        return {resolve_refs(k, ids): resolve_refs(v, ids) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_refs(v, ids) for v in value]
    return value


# --------------------------------------------------------------------------- observed


@dataclass(frozen=True)
class ObservedRoom:
    """What the homeserver has under one alias: the room ID (``None`` if absent) and its state.

    ``state`` maps ``(event_type, state_key)`` to content; it needs at least the
    :data:`MANAGED_EVENT_TYPES` (``m.room.member`` only for the staff room).
    """

    room_id: RoomID | None = None
    state: Mapping[StateKey, Mapping[str, Any]] = field(default_factory=dict)
    room_version: str | None = None


@dataclass(frozen=True)
class TaggedRoom:
    """A room carrying Hearth's ``org.hearth.managed`` marker, as found on the server."""

    room_id: RoomID
    alias: RoomAlias | None = None
    theme: str | None = None
    room: str | None = None


@dataclass(frozen=True)
class Observed:
    """A snapshot of the homeserver: managed aliases, and every room tagged as Hearth's."""

    rooms: Mapping[RoomAlias, ObservedRoom] = field(default_factory=dict)
    tagged: Sequence[TaggedRoom] = ()

    def room(self, alias: RoomAlias) -> ObservedRoom:
        """The observation for ``alias`` (an absent room if the alias is unknown)."""
        return self.rooms.get(alias, ObservedRoom())


# --------------------------------------------------------------------------- desired


@dataclass(frozen=True)
class Pinned:
    """A formatted message Hearth keeps pinned in a room (the welcome room's guidelines, a quiet
    room's guide, a resources room's crisis lines, a group-session room's schedule), with its content
    hash; ``marker`` is the state event that records which event it is and its hash."""

    content: Content
    sha256: str
    marker: StateKey = (GUIDELINES_EVENT, "")

    def is_pinned_in(self, state: Mapping[StateKey, Mapping[str, Any]]) -> bool:
        """Whether ``state`` shows this very message pinned (same hash, still in the pinned list)."""
        marker = state.get(self.marker, {})
        pinned = state.get(("m.room.pinned_events", ""), {}).get("pinned", [])
        return marker.get("sha256") == self.sha256 and marker.get("event_id") in pinned


def pinned_message(markdown: str, *, marker: StateKey, tag: Mapping[str, Any]) -> Pinned:
    """A pinned notice from Markdown: formatted HTML, the Markdown as its plain-text body, a
    ``tag`` (``{"org.hearth.guidelines": {...}}``) saying what it is, and its content hash."""
    body = markdown.strip()
    content: Content = {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": guidelines_html(body),
        **tag,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return Pinned(content=content, sha256=digest, marker=marker)


@dataclass(frozen=True)
class CreateRoomRequest:
    """Everything the executor needs for ``POST /createRoom`` (contents may hold references)."""

    alias_localpart: str
    room_version: str
    creation_content: Content
    power_level_content_override: Content
    initial_state: list[Content]
    invite: list[UserID]
    visibility: Literal["public", "private"]
    is_space: bool

    def body(self, ids: Mapping[str, str]) -> Content:
        """The createRoom JSON body, references resolved from ``ids`` (alias -> room ID)."""
        body: Content = {
            "room_alias_name": self.alias_localpart,
            "room_version": self.room_version,
            "creation_content": self.creation_content,
            "power_level_content_override": self.power_level_content_override,
            "initial_state": self.initial_state,
            "invite": list(self.invite),
            "visibility": self.visibility,
            "preset": "private_chat",
        }
        resolved: Content = resolve_refs(body, ids)
        return resolved


@dataclass(frozen=True)
class DesiredRoom:
    """The state Hearth wants one room (or space) to have."""

    alias: RoomAlias
    kind: Literal["space", "room", "staff"]
    theme: str | None
    room: str | None
    room_version: str
    creation_content: Content
    state: dict[StateKey, Content]
    invite: tuple[UserID, ...] = ()
    pins: tuple[Pinned, ...] = ()

    @property
    def alias_localpart(self) -> str:
        """``#local:server`` -> ``local``."""
        return self.alias[1:].split(":", 1)[0]


def power_levels(
    *,
    bot: UserID,
    staff_ids: Sequence[UserID],
    room_version: str,
    events_default: int,
    state_default: int = 50,
) -> Content:
    """``m.room.power_levels`` content: bot 100, staff 50, members 0.

    For room versions whose creators have infinite power (v12) the bot, as creator, is left out of
    ``users`` (listing it there is invalid).
    """
    users: dict[str, int] = dict.fromkeys(staff_ids, 50)
    if room_version not in CREATOR_POWER_VERSIONS:
        users[bot] = 100
    else:
        users.pop(bot, None)
    return {
        "users": dict(sorted(users.items())),
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.topic": 50,
            "m.room.avatar": 50,
            "m.room.canonical_alias": 50,
            "m.room.pinned_events": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.join_rules": 100,
            "m.room.guest_access": 100,
            "m.room.encryption": 100,
            "m.room.server_acl": 100,
            "m.room.tombstone": 100,
            "m.space.child": 100,
            "m.space.parent": 100,
            MANAGED_EVENT: 100,
            GUIDELINES_EVENT: 100,
            PIN_EVENT: 100,
            WORLD_EVENT: 50,
            SCENE_EVENT: 50,
        },
        "events_default": events_default,
        "state_default": state_default,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50,
        "historical": 100,
        "notifications": {"room": 50},
    }


def _topic(text: str) -> Content:
    text = " ".join(text.split())
    return {"topic": text, "m.topic": {"m.text": [{"mimetype": "text/plain", "body": text}]}}


def _join_rules(room: Room, space_id: str) -> Content:
    allow = [{"type": "m.room_membership", "room_id": space_id}]
    if room.join_rule == "knock":
        return {"join_rule": "knock"}
    return {"join_rule": room.join_rule, "allow": allow}


def guidelines_html(markdown: str) -> str:
    """A theme's guidelines (Markdown) as the HTML Matrix clients show (raw HTML in it is escaped)."""
    return MarkdownIt("commonmark", {"html": False}).render(markdown.strip()).strip()


def crisis_lines_markdown(theme: Theme) -> str:
    """The space's crisis lines from the helpline catalogue, as a Markdown list."""
    return "\n".join(
        f"- **{r.label}**: {r.contact}" + (f" ({r.url})" if r.url else "")
        for r in theme.facilitation.crisis_resources
    )


def guidelines_markdown(theme: Theme) -> str:
    """A theme's guidelines followed by its crisis lines from the helpline catalogue, so that "a
    crisis line pinned below" in the guidelines is true of the pinned message itself."""
    return theme.guidelines.strip() + "\n\n## Crisis lines\n\n" + crisis_lines_markdown(theme)


def guidelines_message(theme: Theme) -> Pinned:
    """The pinned guidelines notice for a theme's welcome room (formatted, with the Markdown as its
    plain-text body) and its crisis lines, with its content hash."""
    return pinned_message(
        guidelines_markdown(theme),
        marker=(GUIDELINES_EVENT, ""),
        tag={"org.hearth.guidelines": {"theme": theme.slug}},
    )


def crisis_lines_message(theme: Theme) -> Pinned:
    """The crisis lines pinned in a theme's resources room."""
    text = (
        "## If you need help now\n\nHearth is peer support, not a crisis service. If you are in danger "
        "now, call your local emergency number. These lines are free and confidential:\n\n"
        + crisis_lines_markdown(theme)
    )
    return pinned_message(
        text,
        marker=(PIN_EVENT, "crisis-lines"),
        tag={PIN_EVENT: {"theme": theme.slug, "key": "crisis-lines"}},
    )


def guide_message(theme: Theme, room: Room) -> Pinned | None:
    """A room's own guide (a quiet room's breathing or grounding guide), pinned; None without one."""
    if room.guide is None:
        return None
    return pinned_message(
        room.guide, marker=(PIN_EVENT, "guide"), tag={PIN_EVENT: {"theme": theme.slug, "key": "guide"}}
    )


def room_pins(theme: Theme, room: Room, schedule: Pinned | None = None) -> tuple[Pinned, ...]:
    """Every message Hearth keeps pinned in ``room``: the guidelines (welcome), the crisis lines
    (resources), the room's guide, and the schedule given for a group-session room."""
    pins = [
        guidelines_message(theme) if room.kind == "welcome" else None,
        crisis_lines_message(theme) if room.kind == "resources" else None,
        guide_message(theme, room),
        schedule if room.kind == "group-session" else None,
    ]
    return tuple(p for p in pins if p is not None)


SESSION_POSTING_LEVELS = (0, 50)  # a group-session room open for a session, or read-only


def _events_default(room: Room, seen: ObservedRoom) -> int:
    """Members post at 0, or not at all (50). A group-session room keeps the level its sessions gave
    it (``bridge.sessions``); a new one starts read-only."""
    if room.kind == "group-session":
        current = seen.state.get(("m.room.power_levels", ""), {}).get("events_default")
        return current if current in SESSION_POSTING_LEVELS else 50
    return 0 if room.members_may_post else 50


def _staff_room(
    alias: RoomAlias, name: str, topic: str, members: Sequence[UserID], *, bot: UserID, tag: str
) -> DesiredRoom:
    """A private, invite-only, unencrypted room for one group of staff (power level 50 each)."""
    return DesiredRoom(
        alias=alias,
        kind="staff",
        theme=None,
        room=None,
        room_version="10",
        creation_content={},
        state={
            ("m.room.name", ""): {"name": name},
            ("m.room.topic", ""): _topic(topic),
            ("m.room.canonical_alias", ""): {"alias": alias},
            ("m.room.join_rules", ""): {"join_rule": "invite"},
            ("m.room.history_visibility", ""): {"history_visibility": "shared"},
            ("m.room.guest_access", ""): {"guest_access": "forbidden"},
            ("m.room.power_levels", ""): power_levels(
                bot=bot, staff_ids=members, room_version="10", events_default=0
            ),
            (MANAGED_EVENT, ""): {"kind": tag},
        },
        invite=tuple(members),
    )


def desired_state(
    themes: Sequence[Theme],
    observed: Observed,
    *,
    bot: UserID,
    staff: Staff,
    server_name: str,
    media: Mapping[str, SceneMedia],
    staff_room: str = STAFF_ROOM_LOCALPART,
    moderators_room: str = MODERATORS_ROOM_LOCALPART,
    schedules: Mapping[RoomAlias, Pinned] | None = None,
) -> list[DesiredRoom]:
    """The desired rooms, in creation order: the clinicians' staff room and the moderators' room,
    then each theme's space and its rooms.

    ``media`` maps :func:`spaces.scene.asset_key` to the uploaded GLB and preview. Room IDs come from
    ``observed`` where the room exists, else are references (see :func:`room_id_ref`).
    ``staff_room`` is the staff room alias's localpart (``escalation.staff_room_alias``: the same room
    the escalation desk posts alerts in; clinicians only); ``moderators_room`` the moderators' room's
    (``moderation.moderators_room_alias``; moderators and admins). ``schedules``: the schedule message
    pinned in each group-session room (by alias; ``spaces.sessions.schedule_message``).

    Whether members may post in a group-session room is the sessions' business (``bridge.sessions``
    opens it for a session and makes it read-only again after): its ``events_default`` is taken from
    what the room has, so applying the themes never opens or closes a session.
    """
    schedules = schedules or {}

    def rid(alias: RoomAlias) -> str:
        return observed.room(alias).room_id or room_id_ref(alias)

    staff_ids = staff.all_ids
    out: list[DesiredRoom] = []

    out.append(
        _staff_room(
            RoomAlias(f"#{staff_room}:{server_name}"),
            "Hearth staff",
            "Clinicians' room: crisis alerts, re-pages and the escalation commands (!esc help). "
            "Not encrypted so the Hearth bot can read commands; never paste members' private details here.",
            staff.clinician_ids,
            bot=bot,
            tag="staff",
        )
    )
    out.append(
        _staff_room(
            RoomAlias(f"#{moderators_room}:{server_name}"),
            "Hearth moderators",
            "Moderators' room: flagged and reported messages, appeals and the moderation commands "
            "(!mod help). Not encrypted so the Hearth bot can read commands.",
            [*staff.moderator_ids, *(UserID(a.user_id) for a in staff.admins)],
            bot=bot,
            tag="moderators",
        )
    )

    for theme in themes:
        s_alias = space_alias(theme, server_name)
        space_id = rid(s_alias)
        space_state: dict[StateKey, Content] = {
            ("m.room.name", ""): {"name": theme.name},
            ("m.room.topic", ""): _topic(theme.description),
            ("m.room.canonical_alias", ""): {"alias": s_alias},
            ("m.room.join_rules", ""): {"join_rule": "public"},
            ("m.room.history_visibility", ""): {"history_visibility": "shared"},
            ("m.room.guest_access", ""): {"guest_access": "forbidden"},
            ("m.room.power_levels", ""): power_levels(
                bot=bot,
                staff_ids=staff_ids,
                room_version=theme.room_version,
                events_default=100,
                state_default=100,
            ),
            (MANAGED_EVENT, ""): {"kind": "space", "theme": theme.slug},
        }
        rooms: list[DesiredRoom] = []
        for order, room in enumerate(theme.rooms):
            r_alias = room_alias(theme, room, server_name)
            key = asset_key(room.scene)
            if key not in media:
                raise PlanError(f"no uploaded scene media for {key} (room {r_alias})")
            space_state[("m.space.child", rid(r_alias))] = {
                "via": [server_name],
                "order": f"{order:02d}",
                "suggested": room.suggested,
                HINT_KEY: space_child_hint(room),
            }
            state: dict[StateKey, Content] = {
                ("m.room.name", ""): {"name": room.name},
                ("m.room.topic", ""): _topic(room.topic),
                ("m.room.canonical_alias", ""): {"alias": r_alias},
                ("m.room.join_rules", ""): _join_rules(room, space_id),
                ("m.room.history_visibility", ""): {"history_visibility": room.history_visibility},
                ("m.room.guest_access", ""): {"guest_access": "forbidden"},
                ("m.room.power_levels", ""): power_levels(
                    bot=bot,
                    staff_ids=staff_ids,
                    room_version=theme.room_version,
                    events_default=_events_default(room, observed.room(r_alias)),
                ),
                ("m.space.parent", space_id): {"via": [server_name], "canonical": True},
                (WORLD_EVENT, ""): world_content(room, media[key]),
                (SCENE_EVENT, ""): scene_content(theme, room, server_name),
                (MANAGED_EVENT, ""): {
                    "kind": "room",
                    "theme": theme.slug,
                    "room": room.slug,
                    "moderation_profile": room.moderation_profile,
                },
            }
            rooms.append(
                DesiredRoom(
                    alias=r_alias,
                    kind="room",
                    theme=theme.slug,
                    room=room.slug,
                    room_version=theme.room_version,
                    creation_content={},
                    state=state,
                    pins=room_pins(theme, room, schedules.get(r_alias)),
                )
            )
        out.append(
            DesiredRoom(
                alias=s_alias,
                kind="space",
                theme=theme.slug,
                room=None,
                room_version=theme.room_version,
                creation_content={"type": "m.space"},
                state=space_state,
            )
        )
        out.extend(rooms)
    return out


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Change:
    """One step of a plan. Contents and state keys may hold room-ID references (see module doc).

    - ``create_space`` / ``create_room``: ``create`` holds the request;
    - ``set_state`` / ``link_child`` / ``set_parent``: send ``event_type``/``state_key``/``content``;
    - ``pin``: send ``content`` as a message, then pin it in ``m.room.pinned_events`` (in place of
      the message the marker named before) and set the marker state event ``event_type`` /
      ``state_key`` to ``{"sha256": detail, "event_id": <sent id>}``;
    - ``invite``: invite ``state_key`` (a user ID) to the room;
    - ``kick``: remove ``state_key`` from a staff room their role does not belong in;
    - ``orphan``: report only; never delete.
    """

    kind: ChangeKind
    alias: str
    event_type: str | None = None
    state_key: str | None = None
    content: Content | None = None
    create: CreateRoomRequest | None = None
    detail: str = ""

    def describe(self) -> str:
        """One human-readable line."""
        if self.kind in ("create_space", "create_room"):
            assert self.create is not None
            n = len(self.create.initial_state)
            return f"{self.kind:<15} {self.alias} (room version {self.create.room_version}, {n} initial state events)"
        if self.kind in ("set_state", "link_child", "set_parent", "pin"):
            key = f" [{self.state_key}]" if self.state_key else ""
            return f"{self.kind:<15} {self.alias} {self.event_type}{key}{(' ' + self.detail) if self.detail else ''}"
        if self.kind in ("invite", "kick"):
            return f"{self.kind:<15} {self.alias} {self.state_key} {self.detail}".rstrip()
        return f"{self.kind:<15} {self.alias} {self.detail}".rstrip()


@dataclass(frozen=True)
class Plan:
    """Ordered changes plus notes (drift that cannot be fixed by state changes)."""

    changes: list[Change]
    notes: list[str] = field(default_factory=list)

    @property
    def actions(self) -> list[Change]:
        """Changes that do something (everything but ``orphan`` reports)."""
        return [c for c in self.changes if c.kind != "orphan"]

    def counts(self) -> dict[str, int]:
        """Number of changes per kind."""
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.kind] = out.get(c.kind, 0) + 1
        return out

    def render(self) -> str:
        """A human-readable summary, one change per line."""
        if not self.changes:
            return "\n".join(
                [
                    "No changes: the homeserver matches the themes.",
                    *(f"note            {n}" for n in self.notes),
                ]
            )
        lines = [c.describe() for c in self.changes]
        lines += [f"note            {n}" for n in self.notes]
        summary = ", ".join(f"{v} {k}" for k, v in sorted(self.counts().items())) or "0 changes"
        lines.append(f"Plan: {len(self.changes)} change(s): {summary}.")
        return "\n".join(lines)


def _matches(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    """Observed content satisfies desired content: every desired top-level key is equal.

    Extra top-level keys the server adds are tolerated; nested values compare exactly.
    """
    if observed is None:
        return False
    return all(k in observed and observed[k] == v for k, v in desired.items())


def _state_kind(event_type: str) -> ChangeKind:
    if event_type == "m.space.child":
        return "link_child"
    if event_type == "m.space.parent":
        return "set_parent"
    return "set_state"


def _summary(event_type: str, old: Mapping[str, Any] | None) -> str:
    return "(new)" if old is None else "(changed)"


def build_plan(
    themes: Sequence[Theme],
    observed: Observed,
    *,
    bot: UserID,
    staff: Staff,
    server_name: str,
    media: Mapping[str, SceneMedia],
    staff_room: str = STAFF_ROOM_LOCALPART,
    moderators_room: str = MODERATORS_ROOM_LOCALPART,
    schedules: Mapping[RoomAlias, Pinned] | None = None,
) -> Plan:
    """Compute the ordered changes that bring the homeserver to the themes' desired state.

    Order: creations (staff room, then per theme the space and its rooms) with their initial state;
    then state fixes on existing rooms; then state that points at rooms created later (space
    children); then pins and invites; orphan reports last.
    """
    desired = desired_state(
        themes,
        observed,
        bot=bot,
        staff=staff,
        server_name=server_name,
        media=media,
        staff_room=staff_room,
        moderators_room=moderators_room,
        schedules=schedules,
    )
    creates: list[Change] = []
    updates: list[Change] = []
    forward: list[Change] = []
    after: list[Change] = []
    notes: list[str] = []
    available: set[str] = {a for a, o in observed.rooms.items() if o.room_id is not None}

    for room in desired:
        seen = observed.room(room.alias)
        if seen.room_id is None:
            initial: list[Content] = []
            for (etype, skey), content in room.state.items():
                if etype in _NOT_INITIAL:
                    continue
                if refs_in([skey, content]) - available:
                    forward.append(
                        Change(_state_kind(etype), room.alias, etype, skey, content, detail="(new)")
                    )
                else:
                    initial.append({"type": etype, "state_key": skey, "content": content})
            request = CreateRoomRequest(
                alias_localpart=room.alias_localpart,
                room_version=room.room_version,
                creation_content=room.creation_content,
                power_level_content_override=room.state[("m.room.power_levels", "")],
                initial_state=initial,
                invite=list(room.invite),
                visibility="public" if room.kind == "space" else "private",
                is_space=room.kind == "space",
            )
            creates.append(
                Change("create_space" if room.kind == "space" else "create_room", room.alias, create=request)
            )
            available.add(room.alias)
            after.extend(_pin(room, pin) for pin in room.pins)
            continue

        if seen.room_version is not None and seen.room_version != room.room_version:
            notes.append(
                f"{room.alias} is room version {seen.room_version}, the theme asks for {room.room_version}: "
                "upgrade it by hand (Hearth never recreates rooms)"
            )
        for (etype, skey), content in room.state.items():
            old = seen.state.get((etype, skey))
            if _matches(content, old):
                continue
            change = Change(_state_kind(etype), room.alias, etype, skey, content, detail=_summary(etype, old))
            (forward if refs_in([skey, content]) - available else updates).append(change)
        after.extend(_pin(room, pin) for pin in room.pins if not pin.is_pinned_in(seen.state))
        for user in room.invite:
            membership = seen.state.get(("m.room.member", user), {}).get("membership")
            if membership is None:
                after.append(Change("invite", room.alias, state_key=user))
        if room.kind == "staff":
            # Staff of another role do not belong here (a moderator never sees clinical alerts);
            # anyone else a member let in is reported, not removed.
            staff_ids = {m.user_id for m in [*staff.moderators, *staff.clinicians, *staff.admins]}
            for key, member_state in sorted(seen.state.items()):
                event_type, member = str(key[0]), str(key[1])
                if event_type != "m.room.member" or member == bot or member in room.invite:
                    continue
                if member_state.get("membership") not in ("join", "invite"):
                    continue
                if member in staff_ids:
                    after.append(
                        Change("kick", room.alias, state_key=member, detail=f"({staff.role_of(member)})")
                    )
                else:
                    notes.append(f"{room.alias} has {member} as a member, who is not staff of this room")

    wanted_ids = {observed.room(r.alias).room_id for r in desired} - {None}
    wanted_aliases = {r.alias for r in desired}
    orphans = [
        Change(
            "orphan",
            t.alias or t.room_id,
            detail=f"room {t.room_id} is tagged as Hearth's ({t.theme or '?'}/{t.room or '-'}) "
            "but no theme names it; left untouched",
        )
        for t in observed.tagged
        if t.room_id not in wanted_ids and (t.alias is None or t.alias not in wanted_aliases)
    ]
    return Plan(changes=creates + updates + forward + after + orphans, notes=notes)


def _pin(room: DesiredRoom, pin: Pinned) -> Change:
    event_type, key = pin.marker
    return Change("pin", room.alias, event_type, key, content=pin.content, detail=pin.sha256)
