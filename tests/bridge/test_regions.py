"""Which country's crisis lines a member is offered, read from the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from bridge.regions import region_for, set_member_region
from spaces.models import ProvisionedSpace

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
MEMBER = "@robin:localhost"


def test_the_members_choice_then_the_space_then_the_operator(engine):
    with Session(engine) as s:
        s.add(
            ProvisionedSpace(
                theme_slug="grief-loss",
                room_id="!g:localhost",
                alias="#grief-loss:localhost",
                theme_version=1,
                region="GB",
                updated_at=NOW,
            )
        )
        s.add(
            ProvisionedSpace(
                theme_slug="carers",
                room_id="!c:localhost",
                alias="#carers:localhost",
                theme_version=1,
                updated_at=NOW,
            )
        )
        s.commit()
        assert region_for(s, user=MEMBER, space="grief-loss", default="US") == "GB"
        assert region_for(s, user=MEMBER, space="carers", default="US") == "US"
        assert region_for(s, user=MEMBER, space="carers", default=None) is None
        assert region_for(s, user=MEMBER, space=None, default="IE") == "IE"
        set_member_region(s, MEMBER, "AU", NOW)
        s.commit()
    with Session(engine) as s:
        assert region_for(s, user=MEMBER, space="grief-loss", default="US") == "AU"
        assert region_for(s, user="@someone.else:localhost", space="grief-loss", default="US") == "GB"
        set_member_region(s, MEMBER, "NZ", NOW)  # a second choice replaces the first
        s.commit()
        assert region_for(s, user=MEMBER, space=None, default=None) == "NZ"
        set_member_region(s, MEMBER, None, NOW)
        set_member_region(s, MEMBER, None, NOW)  # forgetting twice is harmless
        s.commit()
        assert region_for(s, user=MEMBER, space="grief-loss", default="US") == "GB"
