"""Gate decisions for the antispam callbacks Synapse sends before delivery.

Each callback has a list of checks; the first check that answers (a rejection) wins, otherwise the
callback is allowed. Checks are plugged in by the service: room capacity for joins, the moderation
pipeline for events, the invite policy for invites.
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
