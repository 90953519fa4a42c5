from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from spaces.staff import StaffError, load_staff, on_call

LONDON = ZoneInfo("Europe/London")


def test_shipped_staff_loads(staff):
    assert staff.moderator_ids
    assert staff.clinician_ids
    assert all(u.endswith(":localhost") for u in staff.all_ids)
    assert staff.acknowledge.accepts("✅")
    assert staff.acknowledge.accepts("✅\ufe0f")
    assert not staff.acknowledge.accepts("❌")


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (datetime(2025, 3, 3, 9, 30, tzinfo=LONDON), ["@clinician1:localhost"]),  # Monday day shift
        (datetime(2025, 3, 3, 23, 59, tzinfo=LONDON), ["@clinician2:localhost"]),  # Monday evening
        (datetime(2025, 3, 4, 3, 0, tzinfo=LONDON), ["@clinician3:localhost"]),  # night
        (
            datetime(2025, 3, 8, 12, 0, tzinfo=LONDON),
            ["@clinician2:localhost", "@clinician3:localhost"],
        ),  # Sat
    ],
)
def test_on_call_follows_the_rota_in_its_time_zone(staff, local, expected):
    assert on_call(staff.rota, local.astimezone(UTC)) == expected


def test_on_call_handles_summer_time(staff):
    # 07:30 UTC in July is 08:30 in London (BST): the day shift, not the night one.
    assert on_call(staff.rota, datetime(2025, 7, 7, 7, 30, tzinfo=UTC)) == ["@clinician1:localhost"]


def test_overnight_shift_and_fallback(tmp_path):
    path = tmp_path / "staff.toml"
    path.write_text(
        """
[[clinicians]]
user_id = "@night:localhost"
display_name = "Night"
[[clinicians]]
user_id = "@backup:localhost"
display_name = "Backup"
[rota]
timezone = "UTC"
fallback = ["@backup:localhost"]
[[rota.shifts]]
days = ["fri"]
start = 22
end = 6
clinicians = ["@night:localhost"]
[acknowledge]
reactions = ["👍"]
""",
        encoding="utf-8",
    )
    staff = load_staff(path)
    assert on_call(staff.rota, datetime(2025, 3, 7, 23, tzinfo=UTC)) == ["@night:localhost"]  # Fri 23:00
    assert on_call(staff.rota, datetime(2025, 3, 8, 5, tzinfo=UTC)) == ["@night:localhost"]  # Sat 05:00
    assert on_call(staff.rota, datetime(2025, 3, 8, 6, tzinfo=UTC)) == ["@backup:localhost"]  # Sat 06:00
    with pytest.raises(ValueError, match="aware"):
        on_call(staff.rota, datetime(2025, 3, 8, 6))  # noqa: DTZ001


def test_rota_must_name_clinicians(tmp_path):
    path = tmp_path / "staff.toml"
    path.write_text(
        """
[[moderators]]
user_id = "@mod:localhost"
display_name = "Mod"
[[clinicians]]
user_id = "@doc:localhost"
display_name = "Doc"
[rota]
timezone = "Europe/London"
fallback = ["@mod:localhost"]
[acknowledge]
reactions = ["👍"]
""",
        encoding="utf-8",
    )
    with pytest.raises(StaffError, match="not clinicians"):
        load_staff(path)
    path.write_text(path.read_text().replace("Europe/London", "Mars/Olympus"), encoding="utf-8")
    with pytest.raises(StaffError, match=r"rota\.timezone"):
        load_staff(path)


def test_a_staff_member_is_appended_with_the_files_comments_kept_and_checked_first(tmp_path):
    from spaces.staff import DEFAULT_STAFF_FILE, StaffError, add_staff_entry, load_staff

    path = tmp_path / "staff.toml"
    original = DEFAULT_STAFF_FILE.read_text()
    path.write_text(original)
    staff = add_staff_entry(path, "@newmod:localhost", "moderator", 'Jo "JJ" Mod')
    assert staff.role_of("@newmod:localhost") == "moderator"
    assert load_staff(path).display_names["@newmod:localhost"] == 'Jo "JJ" Mod'
    assert path.read_text().startswith(original.rstrip("\n"))  # comments and layout kept
    with pytest.raises(StaffError, match="already listed as moderator"):
        add_staff_entry(path, "@newmod:localhost", "clinician", "again")
    with pytest.raises(StaffError, match="role 'nurse'"):
        add_staff_entry(path, "@x:localhost", "nurse", "x")
    with pytest.raises(StaffError, match="user_id"):
        add_staff_entry(path, "not-an-id", "admin", "x")
    assert load_staff(path).role_of("not-an-id") is None  # a refused entry leaves the file as it was
