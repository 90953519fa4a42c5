"""Members' reports reach moderators: the bot (a server admin) reads Synapse's
``GET /_synapse/admin/v1/event_reports`` (what Element's "Report" sends through
``POST /rooms/{roomId}/report/{eventId}``) and ``GET /_synapse/admin/v1/user_reports`` (reports of a
member as a whole) every ``moderation.report_poll_seconds``.

Reading pages newest first until a report already recorded, then recording oldest first, means a
restart resumes where the database says and never records a report twice (each row is keyed by
Synapse's report ID). Only reports about Hearth's group rooms become cases: a report from a private
room with the bot or a care room is not for volunteer moderators.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from bridge.gateway import GatewayError, NioGateway

log = logging.getLogger(__name__)

PAGE = 100
MAX_PAGES = 20  # at most 2,000 new reports per read; the rest come on the next read


class ReportReader:
    def __init__(
        self,
        gateway: NioGateway,
        *,
        record_event_report: Callable[[dict[str, Any]], Awaitable[bool]],
        record_user_report: Callable[[dict[str, Any]], Awaitable[bool]],
        last_recorded: Callable[[str], Awaitable[int]],
    ):
        self.gateway = gateway
        self.record_event_report = record_event_report
        self.record_user_report = record_user_report
        self.last_recorded = last_recorded
        self.reads = 0
        self.last_error: str | None = None
        self.user_reports_supported = True

    async def read(self) -> int:
        """Scheduler job: record every report newer than the last one recorded; returns how many."""
        if not self.gateway.logged_in:
            return 0  # the bot is still logging in (at start-up, or the homeserver was down)
        recorded = 0
        try:
            recorded += await self._read("event_reports", "synapse", self.record_event_report)
            if self.user_reports_supported:
                try:
                    recorded += await self._read("user_reports", "synapse-user", self.record_user_report)
                except GatewayError as e:
                    if e.status not in (400, 404) and e.errcode != "M_UNRECOGNIZED":
                        raise
                    self.user_reports_supported = False
                    log.info(
                        "this homeserver has no user reports admin API; reports of members come by !report"
                    )
            self.last_error = None
        except (GatewayError, TimeoutError, OSError) as e:
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("could not read the homeserver's reports: %s", e)
        self.reads += 1
        return recorded

    async def _read(
        self, endpoint: str, prefix: str, record: Callable[[dict[str, Any]], Awaitable[bool]]
    ) -> int:
        last = await self.last_recorded(prefix)
        new: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            body = await self.gateway.admin(
                "GET", f"/_synapse/admin/v1/{endpoint}?dir=b&limit={PAGE}&from={page * PAGE}"
            )
            rows = body.get(endpoint) or []
            fresh = [r for r in rows if isinstance(r.get("id"), int) and r["id"] > last]
            new.extend(fresh)
            if len(fresh) < len(rows) or body.get("next_token") is None:
                break
        recorded = 0
        for row in sorted(new, key=lambda r: int(r["id"])):
            if await record(row):
                recorded += 1
        return recorded

    async def event_of(self, report_id: int) -> dict[str, Any] | None:
        """The reported event's JSON (one report's details), or None if the homeserver has none."""
        try:
            body = await self.gateway.admin(
                "GET", f"/_synapse/admin/v1/event_reports/{quote(str(report_id))}"
            )
        except GatewayError as e:
            if e.status == 404:
                return None
            raise
        event = body.get("event_json")
        return event if isinstance(event, dict) else None
