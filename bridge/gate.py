"""Gate decisions for the antispam callbacks Synapse sends before delivery.

Each callback has a list of checks; the first check that answers (a rejection) wins, otherwise the
callback is allowed. Checks are plugged in by the service: room capacity for joins, the moderation
pipeline for events, the invite policy for invites.

Before any check runs, a payload is held to the shape synapse-http-antispam sends (``problem``): a call
missing a field or carrying the wrong type is refused with the field named, so no check ever reads
garbage and decides by accident.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.db import unavailable

log = logging.getLogger(__name__)

Answer = tuple[int, dict[str, Any]]
ALLOW: Answer = (200, {})
# While the database cannot be used, a message is let through (the bot screens it after delivery, when
# the database is back); joins and invites wait (refused with the reason, the member tries again).
FAIL_OPEN = frozenset({"check_event_for_spam"})

# A check returns None to let the next check decide, or an Answer to decide now.
Check = Callable[[dict[str, Any]], Awaitable[Answer | None]]


# What synapse-http-antispam 0.5 sends for each callback Hearth answers: field -> JSON type.
PAYLOADS: dict[str, dict[str, type]] = {
    "check_event_for_spam": {"event": dict},
    "user_may_join_room": {"user": str, "room": str, "is_invited": bool},
    "user_may_invite": {"inviter": str, "invitee": str, "room_id": str},
}
# The fields of ``event`` (the client format of the event, plus its ID) the checks read.
EVENT_FIELDS: dict[str, type] = {"event_id": str, "room_id": str, "sender": str, "type": str, "content": dict}
_TYPE_NAMES = {dict: "an object", str: "a string", bool: "true or false"}


def _fields_problem(payload: dict[str, Any], fields: dict[str, type], prefix: str = "") -> str | None:
    for name, kind in fields.items():
        if name not in payload:
            return f"{prefix}{name}: required"
        if not isinstance(payload[name], kind):
            return f"{prefix}{name}: must be {_TYPE_NAMES[kind]}"
    return None


def problem(callback: str, payload: dict[str, Any]) -> str | None:
    """What is wrong with a callback's payload (``"event.sender: required"``), or None when it has the
    shape the antispam module sends. Unknown extra fields are allowed (a newer module may add some)."""
    wrong = _fields_problem(payload, PAYLOADS[callback])
    if wrong is None and callback == "check_event_for_spam":
        wrong = _fields_problem(payload["event"], EVENT_FIELDS, "event.")
    return wrong


def reject(error: str, reason: str, errcode: str = "M_FORBIDDEN", **extra: Any) -> Answer:
    """A 403 answer: Synapse refuses the request and shows ``error`` to the sender."""
    return 403, {"errcode": errcode, "error": error, "org.hearth.reason": reason, **extra}


class Gate:
    def __init__(self) -> None:
        self.checks: dict[str, list[Check]] = {}

    def add_check(self, callback: str, check: Check) -> None:
        self.checks.setdefault(callback, []).append(check)

    async def decide(self, callback: str, payload: dict[str, Any]) -> Answer:
        try:
            for check in self.checks.get(callback, []):
                answer = await check(payload)
                if answer is not None:
                    return answer
        except Exception as e:
            reason = unavailable(e)
            if reason is None:
                raise
            log.warning(
                "gate %s without the database (%s): %s",
                callback,
                reason,
                "allowed, screened after delivery" if callback in FAIL_OPEN else "refused for now",
            )
            if callback in FAIL_OPEN:
                return ALLOW
            return 503, {
                "errcode": "M_UNKNOWN",
                "error": f"Hearth can't check this just now ({reason}). Please try again in a minute.",
                "org.hearth.reason": "database_unavailable",
            }
        return ALLOW
