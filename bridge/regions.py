"""Which country's crisis lines a member gets: the database half of ``config.resources.choose_region``.

A member's own choice (``!region GB`` in their private room with the bot, :class:`MemberRegion`)
comes first, then the region of the space they wrote in (``ProvisionedSpace.region``, from its
theme), then the operator's ``escalation.default_region``; none of them: the international set.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bridge.models import MemberRegion
from config.resources import choose_region
from spaces.models import ProvisionedSpace


def region_for(session: Session, *, user: str, space: str | None, default: str | None) -> str | None:
    """The region whose lines ``user`` is offered for a message in ``space`` (a theme slug or None)."""
    chosen = session.get(MemberRegion, user)
    sp = session.get(ProvisionedSpace, space) if space else None
    return choose_region(
        member=chosen.region if chosen else None, space=sp.region if sp else None, operator=default or None
    )


def set_member_region(session: Session, user: str, region: str | None, now: datetime) -> None:
    """Remember ``user``'s choice (``None`` forgets it: the space's or operator's region applies again)."""
    row = session.get(MemberRegion, user)
    if region is None:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        session.add(MemberRegion(user_id=user, region=region, updated_at=now))
    else:
        row.region, row.updated_at = region, now
        session.add(row)
