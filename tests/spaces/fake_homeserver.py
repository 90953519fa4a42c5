"""A tiny in-memory stand-in for the homeserver's room state, enough to apply a Plan in domain tests.

It mirrors what createRoom does with our requests (power levels from the override, canonical alias
from room_alias_name, initial_state as given) and records every state event it "sends".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.ids import RoomAlias, RoomID
from spaces.plan import Observed, ObservedRoom, Plan, TaggedRoom, resolve_refs


@dataclass
class FakeHomeserver:
    server_name: str = "localhost"
    rooms: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def apply(self, plan: Plan) -> None:
        for change in plan.actions:
            if change.create is not None:
                body = change.create.body(self.aliases)
                room_id = f"!r{len(self.rooms) + 1}:{self.server_name}"
                state: dict[tuple[str, str], dict[str, Any]] = {
                    ("m.room.create", ""): {"room_version": body["room_version"], **body["creation_content"]},
                    ("m.room.power_levels", ""): body["power_level_content_override"],
                    ("m.room.canonical_alias", ""): {"alias": change.alias},
                }
                for ev in body["initial_state"]:
                    state[(ev["type"], ev["state_key"])] = ev["content"]
                for user in body["invite"]:
                    state[("m.room.member", user)] = {"membership": "invite"}
                self.rooms[room_id] = state
                self.versions[room_id] = body["room_version"]
                self.aliases[change.alias] = room_id
                self.sent.append((change.alias, "createRoom", ""))
                continue
            room_id = self.aliases[change.alias]
            if change.kind == "pin":
                assert change.event_type is not None
                assert change.state_key is not None
                event_id = f"$e{len(self.messages) + 1}"
                self.messages.append((room_id, dict(change.content or {})))
                state = self.rooms[room_id]
                marker = (change.event_type, change.state_key)
                old = state.get(marker, {}).get("event_id")
                pinned = [
                    p for p in state.get(("m.room.pinned_events", ""), {}).get("pinned", []) if p != old
                ]
                state[("m.room.pinned_events", "")] = {"pinned": [event_id, *pinned]}
                state[marker] = {"sha256": change.detail, "event_id": event_id}
                self.sent.append((change.alias, "pin", change.state_key))
            elif change.kind == "invite":
                assert change.state_key is not None
                self.rooms[room_id][("m.room.member", change.state_key)] = {"membership": "invite"}
                self.sent.append((change.alias, "invite", change.state_key))
            elif change.kind == "kick":
                assert change.state_key is not None
                self.rooms[room_id][("m.room.member", change.state_key)] = {"membership": "leave"}
                self.sent.append((change.alias, "kick", change.state_key))
            else:
                assert change.event_type is not None
                assert change.state_key is not None
                key = resolve_refs(change.state_key, self.aliases)
                self.rooms[room_id][(change.event_type, key)] = resolve_refs(change.content, self.aliases)
                self.sent.append((change.alias, change.event_type, key))

    def observe(self, aliases: list[RoomAlias]) -> Observed:
        rooms = {}
        for alias in aliases:
            room_id = self.aliases.get(alias)
            if room_id is None:
                rooms[alias] = ObservedRoom()
            else:
                rooms[alias] = ObservedRoom(
                    RoomID(room_id), dict(self.rooms[room_id]), self.versions[room_id]
                )
        tagged = [
            TaggedRoom(
                RoomID(rid),
                RoomAlias(state[("m.room.canonical_alias", "")]["alias"]),
                state[("org.hearth.managed", "")].get("theme"),
                state[("org.hearth.managed", "")].get("room"),
            )
            for rid, state in self.rooms.items()
            if ("org.hearth.managed", "") in state
        ]
        return Observed(rooms=rooms, tagged=tagged)
