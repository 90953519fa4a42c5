"""The OpenAPI document describes the staff API: every /api route answers with a named schema and
requires the signed-in session (the sign-in itself excepted)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.web.app import create_app


def _schema() -> dict[str, Any]:
    return create_app(None).openapi()  # type: ignore[arg-type]  # the document needs no service


def test_every_api_route_has_a_response_model():
    doc = _schema()
    checked = 0
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in ops.items():
            ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert ok, f"{method.upper()} {path} documents no success response"
            for code, r in ok.items():
                schema = r["content"]["application/json"]["schema"]
                assert "$ref" in schema, f"{method.upper()} {path} {code} has no response model: {schema}"
            checked += 1
    assert checked >= 10


def test_escalation_routes_document_their_refusals():
    doc = _schema()
    op = doc["paths"]["/api/escalations/{esc_id}/acknowledge"]["post"]
    assert {"403", "404", "409"} <= set(op["responses"])
    err = doc["components"]["schemas"]["ErrorOut"]
    assert {"errcode", "error"} <= set(err["required"])
    trail = doc["components"]["schemas"]["TrailOut"]
    assert {"evidence", "audit", "notifications", "conversation"} <= set(trail["properties"])


def test_every_integer_query_parameter_is_bounded():
    # an unbounded one reached the database as 2**64 (SQLite: "Python int too large"), a 500
    doc = _schema()
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                if param["in"] == "query" and schema.get("type") == "integer":
                    assert "maximum" in schema, f"{method.upper()} {path} ?{param['name']} has no maximum"
                    checked += 1
    assert checked >= 3


def test_a_user_id_with_control_characters_is_refused_before_the_database():
    # PostgreSQL refuses a NUL in text: such an ID reached it as a 500 (schemathesis found it)
    from pydantic import ValidationError

    from bridge.web.routes.moderation_api import LiftBody

    assert LiftBody(user_id="@alice_1=x:hearth.example:8448", kind="mute").user_id.startswith("@alice")
    for bad in ("@\x00a:localhost", "@a:local\nhost", "@a b:localhost", "@:localhost", "alice:localhost"):
        with pytest.raises(ValidationError):
            LiftBody(user_id=bad, kind="mute")
    doc = _schema()
    member = doc["paths"]["/api/mod/members/{user_id}"]["get"]["parameters"]
    assert any(p["name"] == "user_id" and "pattern" in p["schema"] for p in member)


def test_a_nul_character_anywhere_in_a_staff_api_request_is_refused_with_a_reason():
    # PostgreSQL refuses NUL in text; refused before any route or database (no service needed here)
    from fastapi.testclient import TestClient

    client = TestClient(create_app(None))  # type: ignore[arg-type]
    for method, url, body in (
        ("POST", "/api/mod/members/%40a%3Alocalhost/notes", {"text": "a note\u0000"}),
        ("GET", "/api/mod/members/%40a%00b%3Alocalhost", None),
        ("GET", "/api/escalations?room_id=%21r%00%3Alocalhost", None),
    ):
        r = client.request(method, url, json=body)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["errcode"] == "M_BAD_JSON"
        assert "NUL" in r.json()["error"]
