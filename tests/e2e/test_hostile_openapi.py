"""schemathesis against Hearth's own OpenAPI document, on a running Hearth, signed in as a clinician
and as a moderator (each role reaches its routes; the other's answer 403): no 5xx, and every answer
matches the schema the document gives for it (status documented, body valid, content type right)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.escalation_staff import CLINICIAN, MODERATOR, sign_in

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Not fuzzed here: the gate (Synapse's secret, tests/e2e/test_hostile_gate.py), sign-out (it would end the
# session under test), live event streams (they never end), HTML pages (no JSON schema to match), and
# the members' sign-up codes (each call spends the address's hourly allowance that the stack's other
# tests use: its refusals are tested in tests/e2e/test_join.py).
SKIPPED_PATHS = (
    "/_hearth/antispam",
    "/api/auth/sign-out",
    "/api/join",
    "/staff",
    "/mod",
    "/join",
    "/docs",
    "/redoc",
)


def _operations(hs):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_url(f"{hs.layout.hearth_url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    return [op for op in ops if not op.path.startswith(SKIPPED_PATHS) and op.path != "/metrics"]


@pytest.mark.parametrize("who", [CLINICIAN, MODERATOR])
def test_every_operation_answers_within_its_schema_and_never_5xx(hearth_stack, who):
    hs = hearth_stack
    headers = {"Authorization": f"Bearer {sign_in(hs, who)}"}
    operations = _operations(hs)
    assert len(operations) >= 15, [op.path for op in operations]
    seen: dict[str, int] = {}
    for op in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def fuzz(case):  # type: ignore[no-untyped-def]
            response = case.call(base_url=hs.layout.hearth_url, headers=headers, timeout=30)
            seen[case.operation.label] = seen.get(case.operation.label, 0) + 1
            case.validate_response(response, checks=CHECKS)

        fuzz()
    # the session survived the run (nothing signed it out or broke it)
    me = httpx.get(f"{hs.layout.hearth_url}/api/auth/me", headers=headers, timeout=10)
    assert me.status_code == 200, me.text
    print(f"schemathesis as {who}: {sum(seen.values())} requests over {len(seen)} operations")
