"""Gate decisions for the antispam callbacks Synapse sends before delivery.

Each callback has a list of checks; the first check that answers (a rejection) wins, otherwise the
callback is allowed. Checks are plugged in by the service: room capacity for joins, the moderation
pipeline for events, the invite policy for invites.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Answer = tuple[int, dict[str, Any]]
ALLOW: Answer = (200, {})

# A check returns None to let the next check decide, or an Answer to decide now.
Check = Callable[[dict[str, Any]], Awaitable[Answer | None]]


def reject(error: str, reason: str, errcode: str = "M_FORBIDDEN", **extra: Any) -> Answer:
    """A 403 answer: Synapse refuses the request and shows ``error`` to the sender."""
    return 403, {"errcode": errcode, "error": error, "org.hearth.reason": reason, **extra}


class Gate:
    def __init__(self) -> None:
        self.checks: dict[str, list[Check]] = {}

    def add_check(self, callback: str, check: Check) -> None:
        self.checks.setdefault(callback, []).append(check)

    async def decide(self, callback: str, payload: dict[str, Any]) -> Answer:
        for check in self.checks.get(callback, []):
            answer = await check(payload)
            if answer is not None:
                return answer
        return ALLOW
