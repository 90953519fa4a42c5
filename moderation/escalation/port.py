"""The one typed entry point into escalation for the rest of Hearth.

Screening (at the gate) and the bot's actions (after delivery) both hand a crisis verdict to an
:class:`EscalationPort`; the bridge's escalation desk implements it. Raising is idempotent per event:
the gate raises as soon as it has a verdict (the rules' fast one, before the models run), and the
after-delivery path raises again only as the safety net for a crash in between or with a higher
tier than the gate saw; either way a person has one escalation per room and episode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from moderation.escalation.tables import Escalation
    from moderation.types import Message, Verdict


class EscalationPort(Protocol):
    async def raise_for(self, message: Message, verdict: Verdict) -> Escalation | None:
        """Raise (or merge into) the sender's escalation for ``verdict``'s ``escalate`` disposition;
        None when the verdict does not escalate."""
        ...
