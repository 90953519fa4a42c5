from datetime import UTC, datetime

from sqlmodel import Session, select

from spaces.models import ProvisionedRoom, ProvisionedSpace, UploadedMedia

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def test_catalogue_round_trip(engine):
    with Session(engine) as s:
        s.add(
            ProvisionedSpace(
                theme_slug="grief-loss",
                room_id="!s:localhost",
                alias="#grief-loss:localhost",
                theme_version=1,
                updated_at=NOW,
            )
        )
        s.add(
            ProvisionedRoom(
                alias="#grief-loss-quiet:localhost",
                room_id="!q:localhost",
                space_slug="grief-loss",
                room_slug="quiet",
                capacity=12,
                profile="quiet",
                members_may_post=True,
                updated_at=NOW,
            )
        )
        s.add(
            UploadedMedia(
                sha256="a" * 64, mxc="mxc://localhost/abc", content_type="model/gltf-binary", created_at=NOW
            )
        )
        s.commit()
    with Session(engine) as s:
        room = s.exec(select(ProvisionedRoom).where(ProvisionedRoom.room_id == "!q:localhost")).one()
        assert (room.capacity, room.profile, room.members_may_post) == (12, "quiet", True)
        assert s.get(ProvisionedSpace, "grief-loss").theme_version == 1
        assert s.get(UploadedMedia, "a" * 64).mxc == "mxc://localhost/abc"
