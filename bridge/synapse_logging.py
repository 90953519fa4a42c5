"""A logging filter for Synapse's process: the antispam module's log lines without the event they carry.

synapse-http-antispam logs the whole request when Hearth cannot be reached or answers oddly ("Failed to
connect to antispam server (POST <url> <event>)"), and the event's content is a member's message. Hearth
is down exactly when that happens most, so every message sent in an outage would be written to Synapse's
log. The filter (named in ``config/synapse/log.config.j2``) keeps the line and the event's ID and drops
its content. It runs inside Synapse, so it imports nothing of Hearth's.
"""

from __future__ import annotations

import logging
from typing import Any


def _withheld(arg: Any) -> Any:
    if not isinstance(arg, dict):
        return arg
    event = arg.get("event")
    if isinstance(event, dict):
        return f"{{event {event.get('event_id', '?')} in {event.get('room_id', '?')}: content withheld}}"
    return {k: v for k, v in arg.items() if isinstance(v, str | bool | int | None)}


class WithoutEventContent(logging.Filter):
    """Replace the event in a record's arguments by its ID and room (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_withheld(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = _withheld(record.args)
        return True
