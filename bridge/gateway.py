"""The only module that talks to matrix-nio (habit 1): converts nio's ``Response | Error`` unions
into plain values or :class:`GatewayError`, and holds the raw HTTP client for Synapse's admin API."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    RoomBanResponse,
    RoomCreateResponse,
    RoomGetStateResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomResolveAliasResponse,
    RoomSendResponse,
    RoomUnbanResponse,
    RoomVisibility,
    SyncResponse,
    UploadResponse,
)

from bridge.private_file import write_private
from config.ids import EventID, RoomID, UserID

log = logging.getLogger(__name__)

# The bot always logs in as the same device, so restarts reuse it instead of piling up devices.
BOT_DEVICE_ID = "HEARTH_BOT"

# Timeline events per room per sync. When more arrived since the last sync (a burst, or the service
# was down), the homeserver returns only the newest with ``limited`` set; the rest are fetched from
# /messages back to the previous sync token, so no message goes unscreened and no acknowledgement
# or staff command is missed.
SYNC_TIMELINE_LIMIT = 50
GAP_PAGE = 100
GAP_MAX_PAGES = 100  # at most 10,000 events of one room per sync; beyond that, an error is logged


def sync_filter(first: bool) -> dict[str, Any]:
    """What the bot syncs: room timelines (and, on the first sync, the rooms' state). Not presence,
    typing, receipts or account data, which it never reads from /sync: each is work for the
    homeserver on every sync, and the bot syncs on every message of every Hearth room."""
    return {
        "presence": {"types": []},
        "account_data": {"types": []},
        "room": {
            "timeline": {"limit": 0 if first else SYNC_TIMELINE_LIMIT},
            "state": {"lazy_load_members": True},
            "ephemeral": {"types": []},
            "account_data": {"types": []},
        },
    }


class GatewayError(Exception):
    """A homeserver request failed. ``status`` is the HTTP status where known, ``errcode`` Matrix's."""

    def __init__(self, what: str, message: str, status: int | None = None, errcode: str | None = None):
        super().__init__(f"{what}: {errcode or ''} {message}".strip())
        self.status = status
        self.errcode = errcode


@dataclass
class TimelineEvent:
    room_id: RoomID
    event: dict[str, Any]

    @property
    def event_id(self) -> EventID:
        return EventID(self.event.get("event_id", ""))

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))

    @property
    def sender(self) -> UserID:
        return UserID(self.event.get("sender", ""))


@dataclass
class SyncBatch:
    next_batch: str
    timeline: list[TimelineEvent] = field(default_factory=list)
    invited_rooms: list[RoomID] = field(default_factory=list)


def _check(what: str, resp: Any, ok: type) -> Any:
    if isinstance(resp, ok):
        return resp
    if isinstance(resp, ErrorResponse):
        transport = getattr(resp, "transport_response", None)
        status = getattr(transport, "status", None)
        errcode = resp.status_code if isinstance(resp.status_code, str) else None
        raise GatewayError(what, resp.message or "", status if isinstance(status, int) else None, errcode)
    raise GatewayError(what, f"unexpected response {type(resp).__name__}")


class NioGateway:
    """matrix-nio client for the bot, plus Synapse admin calls with the bot's (admin) token."""

    def __init__(
        self, homeserver_url: str, user_id: str, request_timeout: float = 60, device_id: str = BOT_DEVICE_ID
    ):
        self.homeserver_url = homeserver_url
        self.user_id = UserID(user_id)
        self.client = AsyncClient(
            homeserver_url,
            user_id,
            device_id=device_id,
            config=AsyncClientConfig(
                encryption_enabled=False,
                store_sync_tokens=False,
                request_timeout=request_timeout,
                max_timeouts=1,
                # never sleep inside nio on 429: the caller backs off and stays responsive
                max_limit_exceeded=0,
            ),
        )
        self.http = httpx.AsyncClient(base_url=homeserver_url, timeout=10)

    async def close(self) -> None:
        await self.client.close()
        await self.http.aclose()

    # --- session ---

    async def login(self, password: str, device_name: str = "Hearth bot") -> None:
        resp = await self.client.login(password=password, device_name=device_name)
        _check("login", resp, LoginResponse)

    async def restore(self, access_token: str) -> bool:
        """Reuse a saved access token; True if the homeserver still accepts it."""
        self.client.access_token = access_token
        r = await self.http.get(
            "/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {access_token}"}
        )
        if r.status_code == 200 and r.json().get("user_id") == self.user_id:
            self.client.user_id = self.user_id
            return True
        if r.status_code in (401, 403):
            self.client.access_token = ""
            return False
        raise GatewayError("whoami", r.text[:200], r.status_code)

    async def restore_or_login(self, password: str, session_file: Path | None, device_name: str) -> None:
        """Reuse the access token saved in ``session_file`` if the homeserver still accepts it, else
        log in and save the new one: restarts then neither log in (and meet Synapse's login rate
        limit) nor pile up sessions."""
        if session_file is not None:
            try:
                saved = json.loads(await asyncio.to_thread(session_file.read_text))
                if await self.restore(str(saved["access_token"])):
                    return
            except (OSError, ValueError, KeyError, TypeError):
                pass  # no usable saved session: log in
        await self.login(password, device_name=device_name)
        if session_file is not None:
            body = json.dumps({"user_id": self.user_id, "access_token": self.access_token})
            await asyncio.to_thread(write_private, session_file, body)

    @property
    def access_token(self) -> str:
        return str(self.client.access_token or "")

    @property
    def logged_in(self) -> bool:
        return bool(self.client.access_token)

    async def reachable(self) -> bool:
        """Whether the homeserver's client API answers at all (used by /healthz)."""
        try:
            r = await self.http.get("/_matrix/client/versions", timeout=3)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    # --- sync ---

    async def sync(self, since: str | None, timeout_ms: int, first: bool = False) -> SyncBatch:
        """Every timeline event since ``since``, oldest first per room (limited timelines filled in)."""
        resp = await self.client.sync(
            timeout=timeout_ms, since=since, sync_filter=sync_filter(first), full_state=first or None
        )
        resp = _check("sync", resp, SyncResponse)
        batch = SyncBatch(next_batch=resp.next_batch)
        for room_id, info in resp.rooms.join.items():
            if info.timeline.limited and since is not None and not first and info.timeline.prev_batch:
                for event in await self._gap(room_id, info.timeline.prev_batch, since):
                    batch.timeline.append(TimelineEvent(RoomID(room_id), event))
            for ev in info.timeline.events:
                batch.timeline.append(TimelineEvent(RoomID(room_id), dict(ev.source)))
        batch.invited_rooms = [RoomID(r) for r in resp.rooms.invite]
        return batch

    async def _gap(self, room_id: str, prev_batch: str, since: str) -> list[dict[str, Any]]:
        """The events a limited timeline left out: from its ``prev_batch`` back to ``since``, oldest first."""
        out: list[dict[str, Any]] = []
        token = prev_batch
        for _ in range(GAP_MAX_PAGES):
            resp = _check(
                f"messages of {room_id}",
                await self.client.room_messages(room_id, start=token, end=since, limit=GAP_PAGE),
                RoomMessagesResponse,
            )
            out.extend(dict(ev.source) for ev in resp.chunk)
            if not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
        else:
            log.error(
                "sync gap in %s: more than %d events since the last sync; older ones were not fetched",
                room_id,
                len(out),
            )
        if out:
            log.info("sync gap in %s: fetched %d events the sync left out", room_id, len(out))
        return out[::-1]

    # --- rooms ---

    async def join(self, room: str) -> RoomID:
        resp = _check(f"join {room}", await self.client.join(room), JoinResponse)
        return RoomID(resp.room_id)

    async def send(
        self,
        room_id: str,
        content: dict[str, Any],
        event_type: str = "m.room.message",
        txn_id: str | None = None,
    ) -> EventID:
        resp = await self.client.room_send(
            room_id, event_type, content, tx_id=txn_id, ignore_unverified_devices=True
        )
        return EventID(_check(f"send to {room_id}", resp, RoomSendResponse).event_id)

    async def create_room(self, **kwargs: Any) -> RoomID:
        resp = await self.client.room_create(**kwargs)
        return RoomID(_check("create room", resp, RoomCreateResponse).room_id)

    async def create_private_room(
        self,
        *,
        name: str | None = None,
        topic: str | None = None,
        alias: str | None = None,
        is_direct: bool = False,
        power_users: dict[str, int] | None = None,
        invite_level: int | None = None,
    ) -> RoomID:
        """An invite-only, unencrypted room (the bot has no E2EE), e.g. the staff room or a DM.

        Nobody is invited here: callers invite one by one, so one unknown user cannot fail the creation.
        ``invite_level``: the power level needed to invite (the preset's default is 0, anyone in it).
        """
        override: dict[str, Any] | None = None
        if power_users:
            override = {"users": {self.user_id: 100, **power_users}}
        if invite_level is not None:
            override = {**(override or {}), "invite": invite_level}
        resp = await self.client.room_create(
            visibility=RoomVisibility.private,
            alias=alias,
            name=name,
            topic=topic,
            is_direct=is_direct,
            preset=RoomPreset.private_chat,
            power_level_override=override,
        )
        return RoomID(_check("create room", resp, RoomCreateResponse).room_id)

    async def create_room_with(self, body: dict[str, Any]) -> RoomID:
        """``POST /createRoom`` with a complete body (creation_content, initial_state, ...) as given."""
        resp = await self._client_api("POST", "/_matrix/client/v3/createRoom", "create room", json=body)
        if not resp or "room_id" not in resp:
            raise GatewayError("create room", "no room_id in the answer")
        return RoomID(resp["room_id"])

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> EventID:
        resp = await self.client.room_put_state(room_id, event_type, content, state_key=state_key)
        return EventID(_check(f"put {event_type} in {room_id}", resp, RoomPutStateResponse).event_id)

    async def get_state(self, room_id: str) -> list[dict[str, Any]]:
        resp = await self.client.room_get_state(room_id)
        return list(_check(f"state of {room_id}", resp, RoomGetStateResponse).events)

    async def resolve_alias(self, alias: str) -> RoomID | None:
        resp = await self.client.room_resolve_alias(alias)
        if isinstance(resp, RoomResolveAliasResponse):
            return RoomID(resp.room_id)
        return None

    async def invite_direct(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id`` marking the room as a direct chat (``is_direct`` on the invite, which the
        invite API cannot set), as ``createRoom`` with ``is_direct`` would have."""
        await self.put_state(
            room_id, "m.room.member", {"membership": "invite", "is_direct": True}, state_key=user_id
        )

    async def invite(self, room_id: str, user_id: str) -> None:
        resp = await self.client.room_invite(room_id, user_id)
        _check(f"invite {user_id} to {room_id}", resp, RoomInviteResponse)

    async def get_event(self, room_id: str, event_id: str) -> dict[str, Any]:
        """One event the bot can see (``GET /rooms/{roomId}/event/{eventId}``); GatewayError if none."""
        path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/event/{quote(event_id, safe='')}"
        event = await self._client_api("GET", path, f"event {event_id}")
        if event is None:
            raise GatewayError(f"event {event_id}", "not found", 404, "M_NOT_FOUND")
        return dict(event)

    async def kick(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        resp = await self.client.room_kick(room_id, user_id, reason=reason)
        _check(f"kick {user_id} from {room_id}", resp, RoomKickResponse)

    async def ban(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        resp = await self.client.room_ban(room_id, user_id, reason=reason)
        _check(f"ban {user_id} from {room_id}", resp, RoomBanResponse)

    async def unban(self, room_id: str, user_id: str) -> None:
        resp = await self.client.room_unban(room_id, user_id)
        _check(f"unban {user_id} from {room_id}", resp, RoomUnbanResponse)

    async def _client_api(self, method: str, path: str, what: str, json: Any = None) -> Any:
        """A client-server call with the bot's token for what nio does not cover; 404 -> None."""
        r = await self.http.request(
            method, path, json=json, headers={"Authorization": f"Bearer {self.client.access_token}"}
        )
        if r.status_code == 404:
            return None
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": r.text[:200]}
            raise GatewayError(what, body.get("error", ""), r.status_code, body.get("errcode"))
        return r.json() if r.content else {}

    async def get_state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        """The content of one state event, or None if the room has none (or the bot cannot see it)."""
        path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state/{quote(event_type, safe='')}/{quote(state_key, safe='')}"
        try:
            return await self._client_api("GET", path, f"state {event_type} of {room_id}")
        except GatewayError as e:
            if e.status == 403:
                return None
            raise

    async def member_event(self, room_id: str, user_id: str) -> dict[str, Any] | None:
        """``user_id``'s current ``m.room.member`` event in the room, whole (``event_id`` included),
        or None if there is none."""
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state/m.room.member/"
            f"{quote(user_id, safe='')}?format=event"
        )
        return await self._client_api("GET", path, f"membership of {user_id} in {room_id}")

    async def members_at(self, room_id: str, event_id: str) -> set[UserID]:
        """Who was joined to the room just after ``event_id`` (the room's state at that event, as
        ``/context`` gives it), whatever happened since."""
        only_members = json.dumps({"types": ["m.room.member"]}, separators=(",", ":"))
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/context/{quote(event_id, safe='')}"
            f"?limit=0&filter={quote(only_members, safe='')}"
        )
        body = await self._client_api("GET", path, f"members at {event_id}")
        if body is None:
            raise GatewayError(f"members at {event_id}", "event not found", 404, "M_NOT_FOUND")
        return {
            UserID(str(ev.get("state_key")))
            for ev in body.get("state", [])
            if ev.get("type") == "m.room.member" and (ev.get("content") or {}).get("membership") == "join"
        }

    async def get_account_data(self, event_type: str) -> dict[str, Any] | None:
        """The bot's global account data of ``event_type`` (e.g. ``m.direct``), or None."""
        path = f"/_matrix/client/v3/user/{quote(self.user_id, safe='')}/account_data/{quote(event_type, safe='')}"
        return await self._client_api("GET", path, f"get account data {event_type}")

    async def set_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        path = f"/_matrix/client/v3/user/{quote(self.user_id, safe='')}/account_data/{quote(event_type, safe='')}"
        await self._client_api("PUT", path, f"set account data {event_type}", json=content)

    async def ensure_display_name(self, name: str) -> bool:
        """Set the bot's display name to ``name`` unless it already is (a change rewrites the bot's
        membership in every room it is in, so it is not repeated on each start). True if changed."""
        path = f"/_matrix/client/v3/profile/{quote(self.user_id, safe='')}/displayname"
        current = await self._client_api("GET", path, "get the bot's display name")
        if (current or {}).get("displayname") == name:
            return False
        await self._client_api("PUT", path, "set the bot's display name", json={"displayname": name})
        return True

    async def silence_notifications(self) -> None:
        """Enable the bot's ``.m.rule.master`` push rule: it reads every message of every Hearth room
        and needs no notifications. Without it the homeserver records a push action for the bot on
        each message and recounts the bot's (never read) unread messages on each of its syncs: work
        that grows with traffic and delays every other request, crisis alerts included."""
        path = "/_matrix/client/v3/pushrules/global/override/.m.rule.master/enabled"
        await self._client_api("PUT", path, "enable the master push rule", json={"enabled": True})

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> EventID:
        resp = await self.client.room_redact(room_id, event_id, reason=reason)
        return EventID(_check(f"redact {event_id}", resp, RoomRedactResponse).event_id)

    async def upload(self, data: bytes, content_type: str, filename: str) -> str:
        import io

        resp, _ = await self.client.upload(
            io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data)
        )
        return str(_check(f"upload {filename}", resp, UploadResponse).content_uri)

    # --- Synapse admin API (raw HTTP; the bot is a server admin) ---

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        r = await self.http.request(
            method, path, json=json, headers={"Authorization": f"Bearer {self.client.access_token}"}
        )
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": r.text[:200]}
            raise GatewayError(f"{method} {path}", body.get("error", ""), r.status_code, body.get("errcode"))
        return r.json() if r.content else {}

    async def exempt_from_ratelimit(self, user_id: str) -> None:
        await self.admin(
            "POST",
            f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/override_ratelimit",
            {"messages_per_second": 0, "burst_count": 0},
        )
