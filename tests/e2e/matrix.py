"""A small Matrix client for tests: plain HTTP against the real Synapse (never mocked)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from bridge import stack


def q(s: str) -> str:
    return quote(s, safe="")


class MatrixError(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


SENT: list[str] = []
"""Every message body any test user sent, on any homeserver: a stack searches its logs for those sent
while it ran when it stops (``tests/e2e/conftest.py`` ``running_stack``), so no member's words reach a log anywhere in
the end-to-end, fault and federation runs."""


class User:
    def __init__(self, hs_url: str, user_id: str, token: str):
        self.hs = hs_url
        self.user_id = user_id
        self.token = token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> dict[str, Any]:
        r = httpx.request(
            method,
            f"{self.hs}{path}",
            json=body,
            timeout=timeout,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        data = r.json() if r.content else {}
        if r.status_code >= 400:
            raise MatrixError(r.status_code, data)
        return data

    def create_room(self, **body: Any) -> str:
        return str(self.call("POST", "/_matrix/client/v3/createRoom", body)["room_id"])

    def join(self, room: str) -> str:
        return str(self.call("POST", f"/_matrix/client/v3/join/{q(room)}", {})["room_id"])

    def invite(self, room_id: str, user_id: str) -> None:
        self.call("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/invite", {"user_id": user_id})

    def send(self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        txn = secrets.token_hex(8)
        for key in ("body", "formatted_body"):
            if isinstance(content.get(key), str):
                SENT.append(content[key])
        return str(
            self.call("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/{event_type}/{txn}", content)[
                "event_id"
            ]
        )

    def say(self, room_id: str, text: str) -> str:
        return self.send(room_id, {"msgtype": "m.text", "body": text})

    def state(self, room_id: str) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{self.hs}/_matrix/client/v3/rooms/{q(room_id)}/state",
            timeout=30,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        r.raise_for_status()
        return list(r.json())

    def messages(self, room_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return list(
            self.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit={limit}")["chunk"]
        )


def new_user(
    layout: stack.StackLayout, prefix: str = "member", admin: bool = False, exempt_with: str | None = None
) -> User:
    """Register a fresh user; ``exempt_with`` (an admin token) lifts its rate limits, as tests send fast."""
    name = f"{prefix}{secrets.token_hex(4)}"
    password = secrets.token_hex(12)
    token = stack.register_user(layout, name, password, admin=admin)
    assert token is not None
    user = User(layout.hs_url, f"@{name}:{layout.server_name}", token)
    stack.exempt_from_ratelimit(layout, exempt_with or token, user.user_id)
    return user


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.2, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
