"""The way in without a homeserver: tokens per address are limited, and a bad rate in the settings
is refused with the key named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.join import JoinDesk, TooMany
from config.settings import SettingsError, load_settings


class TokenServer:
    """Stands in for Synapse's registration-token admin API (a pure unit test of the limit)."""

    def __init__(self) -> None:
        self.made: list[dict] = []

    async def admin(self, method: str, path: str, json: dict) -> dict:
        assert (method, path) == ("POST", "/_synapse/admin/v1/registration_tokens/new")
        self.made.append(json)
        return {"token": f"tok{len(self.made)}", **json}


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def test_tokens_are_single_use_expire_and_are_limited_per_address():
    server = TokenServer()
    desk = JoinDesk(server, Clock(), per_address="2/hour", expiry=timedelta(hours=24))  # type: ignore[arg-type]
    first = await desk.token_for("10.0.0.1")
    await desk.token_for("10.0.0.1")
    with pytest.raises(TooMany) as e:
        await desk.token_for("10.0.0.1")
    assert e.value.retry_after >= 1
    await desk.token_for("10.0.0.2")  # another address has its own budget
    assert first.token == "tok1"
    assert server.made[0]["uses_allowed"] == 1
    assert server.made[0]["expiry_time"] == int(datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp() * 1000)
    assert len(server.made) == 3


def test_a_bad_rate_names_the_key():
    with pytest.raises(SettingsError, match=r"join\.tokens_per_address.*not a rate"):
        load_settings(environment="development", join={"tokens_per_address": "lots"})


async def test_held_requests_are_polled_share_the_limit_and_are_forgotten_in_time(engine):
    from sqlmodel import Session

    from bridge.join import pending_requests, purge_requests

    server = TokenServer()
    desk = JoinDesk(
        server,  # type: ignore[arg-type]
        Clock(),
        per_address="2/hour",
        expiry=timedelta(hours=24),
        engine=engine,
        request_expiry=timedelta(hours=72),
    )
    held = await desk.request_for("10.0.0.1")
    await desk.request_for("10.0.0.1")
    with pytest.raises(TooMany):
        await desk.request_for("10.0.0.1")
    assert server.made == []  # no token until an operator approves
    assert (await desk.poll(held.id)).status == "pending"  # type: ignore[union-attr]
    assert await desk.poll("not-a-request") is None
    assert len(held.id) >= 32  # the asker's secret to poll with
    assert len(held.reference) == 6  # the short number an operator decides on
    now = Clock().now()
    with Session(engine) as s:
        assert [r.reference for r in pending_requests(s, now)][0] == held.reference
        assert purge_requests(s, now + timedelta(hours=71)) == 0
        assert purge_requests(s, now + timedelta(hours=72)) == 2
        s.commit()
    assert await desk.poll(held.id) is None
