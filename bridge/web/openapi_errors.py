"""The refusals every route shares, written into the OpenAPI document once (see ``create_app``).

FastAPI documents a 422 with its own body for request validation; Hearth answers that with 400
``M_BAD_JSON`` (its handler in ``app.py``), and uses 422 ``M_INVALID_PARAM`` for a value its domain
refuses (a malformed duration, an unknown outcome). Every route behind a staff session can also answer 401 (no session, or an ended one) and
403 (the person is no longer in the staff file). schemathesis found both missing from the document.
"""

from __future__ import annotations

from typing import Any

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def document_shared_refusals(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with Hearth's 400 and 422 bodies, and 401/403 on every operation that needs a session."""
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            responses = op.get("responses", {})
            if "422" in responses:  # FastAPI's validation error: Hearth's own shape, and 400 for the same
                responses["422"] = _error("a value in the request is refused (M_INVALID_PARAM)")
                responses.setdefault("400", _error("the parameters or the body are not valid (M_BAD_JSON)"))
            if op.get("security"):
                responses.setdefault("401", _error("not signed in, or the session has ended"))
                responses.setdefault("403", _error("not staff any more, or not this route's role"))
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return doc
