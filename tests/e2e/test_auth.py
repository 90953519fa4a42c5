"""Staff sign in with their Matrix identity (OpenID, checked with the real Synapse), and nothing but
the public routes answers without a session."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from bridge.web.app import create_app
from tests.e2e.escalation_staff import ADMIN, CLINICIAN, MODERATOR, matrix_account, sign_in, sign_in_body

pytestmark = pytest.mark.e2e

# Reachable without a session: health, metrics, schemas and API docs, the public directory, the sign-in
# itself (the API and the page), and the gate (which Synapse calls with its own secret, checked by the
# gate). The staff pages' script and style (/staff/static) are files, not routes.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/schemas/room-scene.json"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/api/spaces"),
    ("POST", "/api/auth/openid"),
    ("GET", "/staff"),  # without a session it is the sign-in page
    ("GET", "/join"),  # the way in for members
    ("POST", "/api/join"),  # a single-use sign-up token, rate-limited per address
    ("GET", "/api/join/requests/{request_id}"),  # a request held for approval, by its secret ID
}
GATE = re.compile(r"^/_hearth/antispam/")


def every_route(routes, prefix: str = ""):
    """(method, path, route) of every endpoint, through included routers (FastAPI keeps them nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from every_route(inner.routes, prefix + route.include_context.prefix)
            continue
        for method in sorted(getattr(route, "methods", None) or []):
            if method not in ("HEAD", "OPTIONS"):
                yield method, prefix + route.path, route


def _hearth(hs, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, f"{hs.layout.hearth_url}{path}", timeout=10, **kw)


def _openid_body(user_id: str, hs) -> dict:
    return sign_in_body(matrix_account(hs, user_id))


def test_a_clinician_signs_in_with_matrix_and_gets_a_private_cookie(hearth_stack):
    hs = hearth_stack
    r = _hearth(hs, "POST", "/api/auth/openid", json=_openid_body(CLINICIAN, hs))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["user_id"], body["role"], body["display_name"]) == (
        CLINICIAN,
        "clinician",
        "Test clinician on call",
    )
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("hearth_session=")
    for attribute in ("HttpOnly", "SameSite=strict", "Max-Age=", "Path=/"):
        assert attribute.lower() in cookie.lower()
    me = _hearth(hs, "GET", "/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json() == {"user_id": CLINICIAN, "role": "clinician", "display_name": "Test clinician on call"}
    by_cookie = _hearth(hs, "GET", "/api/escalations", cookies={"hearth_session": body["token"]})
    assert by_cookie.status_code == 200
    # an offset past what a database integer holds is the caller's mistake, not a 500
    huge = _hearth(hs, "GET", f"/api/escalations?offset={2**64}", cookies={"hearth_session": body["token"]})
    assert 400 <= huge.status_code < 500, huge.text
    # the same OpenID token cannot be replayed once it has expired or, here, by someone who changed it
    forged = dict(_openid_body(CLINICIAN, hs), access_token="forged")
    assert _hearth(hs, "POST", "/api/auth/openid", json=forged).status_code == 401


def test_roles_come_from_the_staff_file_and_others_are_refused(hearth_stack):
    hs = hearth_stack
    for user, role in ((MODERATOR, "moderator"), (ADMIN, "admin")):
        token = sign_in(hs, user)
        assert (
            _hearth(hs, "GET", "/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()["role"]
            == role
        )
    r = _hearth(hs, "POST", "/api/auth/openid", json=sign_in_body(hs.member()))
    assert r.status_code == 403
    assert "not listed as Hearth staff" in r.json()["error"]
    r = _hearth(
        hs, "POST", "/api/auth/openid", json={"access_token": "x", "matrix_server_name": "evil.example"}
    )
    assert r.status_code == 403
    assert "an account on localhost" in r.json()["error"]
    assert _hearth(hs, "POST", "/api/auth/openid", json={"token": "x"}).status_code == 400


def test_signing_out_ends_the_session(hearth_stack):
    hs = hearth_stack
    token = sign_in(hs, CLINICIAN)
    auth = {"Authorization": f"Bearer {token}"}
    assert _hearth(hs, "POST", "/api/auth/sign-out", headers=auth).json() == {"signed_out": True}
    r = _hearth(hs, "GET", "/api/auth/me", headers=auth)
    assert r.status_code == 401
    assert "session has ended" in r.json()["error"]


def test_repeated_failed_sign_ins_are_rate_limited(hearth_stack):
    """Failed sign-ins are limited per client address: from another loopback address (so the other
    tests, all from 127.0.0.1, keep theirs), the tries past the limit get 429, a good token too."""
    hs = hearth_stack
    limit = int(
        str(hs.settings.get("staff_api", {}).get("failed_sign_in_limit", "10/5minutes")).split("/")[0]
    )
    bad = {"access_token": "guessing", "matrix_server_name": hs.layout.server_name}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.7"), timeout=10) as elsewhere:
        url = f"{hs.layout.hearth_url}/api/auth/openid"
        codes = [elsewhere.post(url, json=bad).status_code for _ in range(limit + 2)]
        assert codes == [401] * limit + [429, 429]
        r = elsewhere.post(url, json=_openid_body(CLINICIAN, hs))
        assert r.status_code == 429  # even a good token waits: the limit is per address
        assert int(r.headers["retry-after"]) >= 1
    assert _hearth(hs, "POST", "/api/auth/openid", json=_openid_body(CLINICIAN, hs)).status_code == 200


def test_no_route_but_the_public_ones_answers_without_a_session(hearth_stack):
    """Every route of the app, called with no session (and path parameters filled in), is refused;
    the gate refuses callers without its secret."""
    hs = hearth_stack
    app = create_app(None)  # type: ignore[arg-type]  (only its routes are read)
    checked = 0
    for method, path, route in every_route(app.routes):
        concrete = re.sub(r"\{[^}]+\}", "E-0000AA", path)
        r = _hearth(hs, method, concrete, json={})
        checked += 1
        if (method, path) in PUBLIC:
            assert r.status_code < 500, (method, path, r.status_code)
            continue
        if GATE.match(path):
            assert r.status_code in (401, 403), (method, path, r.status_code)
            continue
        assert isinstance(route, APIRoute), path
        assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
    assert checked >= 15
