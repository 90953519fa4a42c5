"""Group sessions' domain: recurrence in the session's own time zone (across daylight saving changes),
theme rules, syncing the themes' series, dated occurrences, opening and closing (also late, after
downtime), reminders once each, attendance without text, private levels. Real database (SQLite and
PostgreSQL); no clock is read: every ``now`` is given."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from spaces.sessions import store
from spaces.sessions.recurrence import Recurrence, RecurrenceError, describe, parse_repeat
from spaces.sessions.schedule import listing, reminder_text, schedule_message
from spaces.sessions.tables import SessionAttendee, SessionOccurrence, SessionSeries
from spaces.themes import DEFAULT_THEMES_DIR, ThemeError, load_themes, parse_theme
from tests.spaces.conftest import SERVER


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def weekly(day: str, first: str, tz: str = "Europe/London", minutes: int = 60) -> Recurrence:
    return Recurrence.of(parse_repeat(f"weekly {day}", date.fromisoformat(first[:10])), tz, first, minutes)


# --- recurrence -------------------------------------------------------------------------------------


def test_a_weekly_session_keeps_its_local_time_across_the_spring_daylight_saving_change():
    rec = weekly("wed", "2026-03-18T19:00")  # London moves to BST on Sunday 29 March 2026
    starts = rec.starts_between(at(2026, 3, 17), at(2026, 4, 9))
    assert starts == [at(2026, 3, 18, 19), at(2026, 3, 25, 19), at(2026, 4, 1, 18), at(2026, 4, 8, 18)]
    assert {f"{rec.local(s):%H:%M}" for s in starts} == {"19:00"}


def test_and_across_the_autumn_change_in_another_zone():
    rec = weekly("sun", "2026-10-25T10:00", tz="America/New_York")  # EDT ends 1 November 2026
    assert rec.starts_between(at(2026, 10, 24), at(2026, 11, 9)) == [
        at(2026, 10, 25, 14),
        at(2026, 11, 1, 15),
        at(2026, 11, 8, 15),
    ]


def test_a_time_the_clocks_skip_happens_an_hour_later_and_a_repeated_one_is_the_first():
    daily = Recurrence.of(parse_repeat("daily", date(2026, 3, 28)), "Europe/London", "2026-03-28T01:30", 30)
    skipped = daily.starts_between(at(2026, 3, 29), at(2026, 3, 30))
    assert skipped == [at(2026, 3, 29, 1, 30)]  # 01:30 GMT does not exist: 02:30 BST by the wall clock
    twice = Recurrence.of(parse_repeat("daily", date(2026, 10, 24)), "Europe/London", "2026-10-24T01:30", 30)
    assert twice.starts_between(at(2026, 10, 25), at(2026, 10, 26)) == [at(2026, 10, 25, 0, 30)]  # BST


def test_repeats_in_words_become_rules_and_read_back():
    first = date(2026, 1, 6)  # a Tuesday
    assert parse_repeat("weekly", first) == "FREQ=WEEKLY;BYDAY=TU"
    assert parse_repeat("fortnightly mon,thu", first) == "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH"
    assert parse_repeat("monthly last fri", first) == "FREQ=MONTHLY;BYDAY=-1FR"
    assert parse_repeat("rrule:FREQ=WEEKLY;BYDAY=SA", first) == "FREQ=WEEKLY;BYDAY=SA"
    monthly = Recurrence.of(parse_repeat("monthly 1st mon", first), "Europe/London", "2026-01-06T18:00", 60)
    assert monthly.next_starts(at(2026, 1, 1), 2) == [at(2026, 2, 2, 18), at(2026, 3, 2, 18)]
    assert describe(monthly) == "The first Monday of every month, 18:00-19:00 (Europe/London time)"
    once = Recurrence.of(parse_repeat("once", first), "Europe/London", "2026-01-06T18:00", 45)
    assert once.next_starts(at(2026, 1, 1), 5) == [at(2026, 1, 6, 18)]
    assert once.last_start() == at(2026, 1, 6, 18)
    assert describe(weekly("wed", "2026-01-07T19:00", minutes=75)) == (
        "Every Wednesday, 19:00-20:15 (Europe/London time)"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("weekly funday", "is not a day"),
        ("hourly", "not a repeat I know"),
        ("rrule:FREQ=MINUTELY", "daily at most"),
        ("rrule:NOT A RULE", "dateutil"),
        ("monthly mon", "which and what day"),
    ],
)
def test_a_repeat_that_cannot_be_used_is_refused_with_the_reason(text, problem):
    with pytest.raises(RecurrenceError, match=problem):
        parse_repeat(text, date(2026, 1, 6))


def test_an_unknown_zone_and_a_naive_now_are_refused():
    with pytest.raises(RecurrenceError, match="time zone"):
        Recurrence.of("FREQ=DAILY", "Europe/Atlantis", "2026-01-06T18:00", 60)
    with pytest.raises(ValueError, match="aware"):
        weekly("wed", "2026-01-07T19:00").starts_between(datetime(2026, 1, 1), at(2026, 2, 1))  # noqa: DTZ001


# --- themes -----------------------------------------------------------------------------------------


def _theme_data(slug: str = "chronic-pain-rehab") -> dict:
    return tomllib.loads((DEFAULT_THEMES_DIR / f"{slug}.toml").read_text())


def _group(data: dict) -> dict:
    return next(r for r in data["rooms"] if r["kind"] == "group-session")


def test_every_theme_schedules_sessions_including_guided_exercise_with_a_physiotherapist(themes):
    formats = {}
    for theme in themes:
        group = theme.room_of_kind("group-session")
        assert group.sessions, theme.slug
        assert not group.members_may_post
        formats.update({spec.format: spec for spec in group.sessions})
    assert "physiotherapist" in formats["guided-exercise"].led_by
    assert "exposure-practice" in formats


def test_theme_session_rules_name_the_key():
    data = _theme_data()
    _group(data)["members_may_post"] = True
    with pytest.raises(ThemeError, match=r"rooms\[3\]\.members_may_post.*read-only between its sessions"):
        parse_theme(data)
    data = _theme_data()
    _group(data)["sessions"][0]["repeat"] = "weekly someday"
    with pytest.raises(ThemeError, match=r"sessions\[0\].*is not a day"):
        parse_theme(data)
    data = _theme_data()
    quiet = next(r for r in data["rooms"] if r["kind"] == "quiet")
    quiet["sessions"] = [
        {**spec, "slug": "elsewhere"} for spec in copy.deepcopy(_group(data)["sessions"][:1])
    ]
    with pytest.raises(ThemeError, match="group-session rooms only"):
        parse_theme(data)
    data = _theme_data("depression-low-mood")  # no practice ladder in this space
    _group(data)["sessions"][0]["format"] = "exposure-practice"
    with pytest.raises(ThemeError, match="exposure-practice needs a graded-exposure ladder"):
        parse_theme(data)


# --- series and dates in the database --------------------------------------------------------------

NOW = at(2026, 12, 7, 12)  # a Monday


def synced(engine, themes, now: datetime = NOW) -> store.SyncResult:
    with Session(engine) as s:
        result = store.sync_theme_series(s, themes, SERVER, now)
        store.materialize(s, now, timedelta(days=35))
        s.commit()
    return result


def test_syncing_the_themes_leaves_an_upcoming_session_in_every_space_and_twice_changes_nothing(
    engine, themes
):
    first = synced(engine, themes)
    assert len(first.added) == sum(len(r.sessions) for t in themes for r in t.rooms)
    with Session(engine) as s:
        spaces = {row.space for row, _ in store.upcoming(s, NOW)}
        assert spaces == {t.slug for t in themes}
        count = len(s.exec(select(SessionOccurrence)).all())
    again = synced(engine, themes)
    assert not again.changed
    with Session(engine) as s:
        assert len(s.exec(select(SessionOccurrence)).all()) == count  # dates are made once


def test_a_changed_time_remakes_the_dates_to_come_and_a_removed_session_ends(engine, themes, tmp_path):
    synced(engine, themes)
    for t in themes:
        (tmp_path / f"{t.slug}.toml").write_text((DEFAULT_THEMES_DIR / f"{t.slug}.toml").read_text())
    path = tmp_path / "depression-low-mood.toml"
    path.write_text(path.read_text().replace("start_time = 18:30:00", "start_time = 17:00:00"))
    grief = tmp_path / "grief-loss.toml"
    text = grief.read_text()
    grief.write_text(
        text[: text.index("[[rooms.sessions]]")] + text[text.index('[[rooms]]\nslug = "quiet"') :]
    )
    changed = load_themes(tmp_path)
    result = synced(engine, changed)
    assert result.updated == ["depression-low-mood/weekly-group"]
    assert result.ended == ["grief-loss/grief-circle"]
    with Session(engine) as s:
        dep = s.exec(select(SessionSeries).where(SessionSeries.space == "depression-low-mood")).one()
        starts = [
            o.starts_at
            for o in s.exec(select(SessionOccurrence).where(SessionOccurrence.series_id == dep.id))
        ]
        assert starts
        assert {
            f"{dep_local:%H:%M}"
            for dep_local in (store.SeriesView.of(dep).recurrence.local(t) for t in starts)
        } == {"17:00"}
        grief_row = s.exec(select(SessionSeries).where(SessionSeries.space == "grief-loss")).one()
        assert grief_row.ended_at == NOW
        statuses = {
            o.status
            for o in s.exec(select(SessionOccurrence).where(SessionOccurrence.series_id == grief_row.id))
        }
        assert statuses == {"cancelled"}
        assert "grief-loss" not in {row.space for row, _ in store.upcoming(s, NOW)}


def _one_series(
    engine, *, start: datetime, minutes: int = 60, fmt: str = "peer-group", named=()
) -> SessionSeries:
    with Session(engine, expire_on_commit=False) as s:
        local = start.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="minutes")
        row = store.add_series(
            s,
            space="anxiety-panic",
            room_alias=f"#anxiety-panic-group-session:{SERVER}",
            title="Evening group",
            format=fmt,
            led_by="a trained volunteer",
            recurrence=Recurrence.of("FREQ=WEEKLY", "UTC", local, minutes),
            facilitators=list(named),
            by="@moderator1:localhost",
            now=start - timedelta(days=3),
        )
        store.materialize(s, start - timedelta(days=3), timedelta(days=14))
        s.commit()
        return row


def _occ(engine, series_id: str, start: datetime) -> SessionOccurrence:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(SessionOccurrence, store.occurrence_id(series_id, start))


def test_a_session_opens_only_once_started_with_its_facilitator_there_and_closes_at_its_end(engine):
    start = at(2026, 12, 9, 19)
    row = _one_series(engine, start=start)
    alias = row.room_alias
    with Session(engine) as s:
        assert store.settle_room(s, alias, start + timedelta(minutes=1)) == (False, [])  # nobody leads yet
        occ, _ = store.current(s, alias, start - timedelta(minutes=10))  # 10 minutes early: may arrive
        assert store.current(s, alias, start - timedelta(minutes=20)) is None  # too early
        assert store.mark_present(s, occ, "@host:localhost", start - timedelta(minutes=10))
        assert store.settle_room(s, alias, start - timedelta(minutes=5)) == (False, [])  # not started
        is_open, changes = store.settle_room(s, alias, start + timedelta(seconds=1))
        assert is_open
        assert [(c.old, c.new) for c in changes] == [("scheduled", "open")]
        assert store.settle_room(s, alias, start + timedelta(minutes=30)) == (True, [])  # nothing new
        is_open, changes = store.settle_room(s, alias, start + timedelta(minutes=60))
        assert not is_open
        assert [(c.old, c.new) for c in changes] == [("open", "closed")]
        s.commit()
    occ = _occ(engine, row.id, start)
    assert occ.status == "closed"
    assert occ.opened_at == start + timedelta(seconds=1)
    assert occ.closed_at == start + timedelta(minutes=60)


def test_after_downtime_a_late_settle_catches_up_and_a_session_that_passed_entirely_was_missed(engine):
    start = at(2026, 12, 9, 19)
    row = _one_series(engine, start=start)
    with Session(engine) as s:
        occ, _ = store.current(s, row.room_alias, start - timedelta(minutes=5))
        store.mark_present(s, occ, "@host:localhost", start - timedelta(minutes=5))
        # Down across the start: the first settle after it, 20 minutes late, opens the room.
        assert store.settle_room(s, row.room_alias, start + timedelta(minutes=20))[0] is True
        s.commit()
    next_week = start + timedelta(days=7)
    with Session(engine) as s:
        # Down across a whole session: it is recorded as missed, and the room stays closed.
        is_open, changes = store.settle_room(s, row.room_alias, next_week + timedelta(hours=2))
        assert not is_open
        assert {(c.occurrence.starts_at, c.new) for c in changes} == {
            (start, "closed"),
            (next_week, "missed"),
        }


def test_who_may_lead_named_facilitators_else_hosts_but_never_a_stand_in_for_guided_exercise(engine):
    peer = SessionSeries(format="peer-group")
    exercise = SessionSeries(format="guided-exercise")
    hosts = ["@moderator1:localhost"]
    assert store.may_lead(peer, [], "@moderator1:localhost", hosts)
    assert not store.may_lead(peer, [], "@member:localhost", hosts)
    assert not store.may_lead(exercise, [], "@moderator1:localhost", hosts)
    assert store.may_lead(exercise, ["@physio:localhost"], "@physio:localhost", hosts)
    assert not store.may_lead(peer, ["@physio:localhost"], "@moderator1:localhost", hosts)


def test_reminders_go_once_each_within_their_grace_and_never_for_a_cancelled_session(engine):
    start = at(2026, 12, 9, 19)
    row = _one_series(engine, start=start)
    assert store.reminder_grace("day") == timedelta(hours=23, minutes=45)
    assert store.reminder_grace("soon") == timedelta(minutes=15)
    oid = store.occurrence_id(row.id, start)
    with Session(engine) as s:
        assert store.claim_reminder(s, oid, "day", start - timedelta(hours=24)) is not None
        assert store.claim_reminder(s, oid, "day", start - timedelta(hours=23)) is None  # once
        assert store.claim_reminder(s, oid, "soon", start + timedelta(minutes=1)) is None  # started
        assert store.claim_reminder(s, oid, "soon", start - timedelta(minutes=15)) is not None
        s.commit()
    week = start + timedelta(days=7)
    with Session(engine) as s:
        store.cancel(s, row.id, week.date(), start)
        s.commit()
    with Session(engine) as s:
        assert (
            store.claim_reminder(s, store.occurrence_id(row.id, week), "day", week - timedelta(hours=24))
            is None
        )
        store.materialize(s, start, timedelta(days=30))  # a cancelled date is never made again
        assert _occ(engine, row.id, week).status == "cancelled"
        with pytest.raises(store.SessionError, match="has no session"):
            store.cancel(s, row.id, (week + timedelta(days=1)).date(), start)


def test_opt_in_and_out_and_only_active_series(engine):
    start = at(2026, 12, 9, 19)
    row = _one_series(engine, start=start)
    with Session(engine) as s:
        store.opt_in(s, "@m:localhost", row.id.upper(), start)
        store.opt_in(s, "@m:localhost", row.id, start)  # twice is once
        assert store.subscribers(s, row.id) == ["@m:localhost"]
        with pytest.raises(store.SessionError, match="no session series"):
            store.opt_in(s, "@m:localhost", "nope", start)
        assert store.opt_out(s, "@m:localhost", None) == 1
        s.commit()


def test_attendance_counts_each_member_once_and_forgets_who_after_retention(engine):
    start = at(2026, 12, 9, 19)
    row = _one_series(engine, start=start)
    with Session(engine) as s:
        occ = s.get(SessionOccurrence, store.occurrence_id(row.id, start))
        store.attend(s, occ, "@a:localhost", joined=True, posted=False, now=start)
        store.attend(s, occ, "@a:localhost", joined=True, posted=True, now=start)
        store.attend(s, occ, "@b:localhost", joined=False, posted=True, now=start)
        store.attend(s, occ, "@b:localhost", joined=False, posted=True, now=start)
        s.commit()
    occ = _occ(engine, row.id, start)
    assert (occ.joined, occ.posted) == (1, 2)
    with Session(engine) as s:
        assert store.purge_attendance(s, start) == 0  # not over yet
        assert store.purge_attendance(s, start + timedelta(days=1)) == 2
        s.commit()
        assert s.exec(select(SessionAttendee)).all() == []
    occ = _occ(engine, row.id, start)
    assert (occ.joined, occ.posted) == (1, 2)  # the counts stay


def test_a_one_off_session_ends_its_series_once_over_and_a_past_one_is_refused(engine):
    with Session(engine) as s:
        rec = Recurrence.of("FREQ=DAILY;COUNT=1", "UTC", "2026-12-09T19:00", 60)

        def add(now: datetime) -> SessionSeries:
            return store.add_series(
                s,
                space="x",
                room_alias="#x",
                title="t",
                format="peer-group",
                led_by="l",
                recurrence=rec,
                facilitators=[],
                by="@m:l",
                now=now,
            )

        with pytest.raises(store.SessionError, match="in the past"):
            add(at(2026, 12, 10))
        row = add(at(2026, 12, 8))
        assert store.finish_series(s, at(2026, 12, 9, 19, 30)) == []
        assert store.finish_series(s, at(2026, 12, 9, 20)) == [row]


def test_the_pinned_schedule_depends_only_on_the_series_and_says_how_to_get_reminders(engine, themes):
    views = list(store.theme_series(themes, SERVER).values())
    rehab = [v for v in views if v.space == "chronic-pain-rehab"]
    first, again = schedule_message(rehab), schedule_message(list(reversed(rehab)))
    assert first.sha256 == again.sha256
    body = first.content["body"]
    assert "Guided seated exercise" in body
    assert "physiotherapist" in body
    assert "Every Tuesday, 11:00-11:45 (Europe/London time)" in body
    assert "!remind <ID>" in body
    assert rehab[0].id in body
    assert "<strong>" in first.content["formatted_body"]
    assert "No sessions are scheduled" in schedule_message([]).content["body"]


def test_an_exposure_practice_reminder_tells_the_member_their_own_level_and_nobody_else_sees_it(themes):
    view = next(v for v in store.theme_series(themes, SERVER).values() if v.format == "exposure-practice")
    start = view.recurrence.next_starts(NOW, 1)[0]
    text = reminder_text(view, start, "soon", "Weekly group", "A few people far away")
    assert "in 15 minutes" in text
    assert "A few people far away" in text
    assert "only you see this" in text
    assert "A few people far away" not in schedule_message([view]).content["body"]
    assert "A few people far away" not in listing([(view, [start], "Weekly group")], set(), {})


def test_levels_are_the_members_own_and_forgetting_erases_them(engine):
    row = _one_series(engine, start=at(2026, 12, 9, 19))
    with Session(engine) as s:
        store.set_level(s, "@m:localhost", "anxiety-panic", "distant-figures", NOW)
        store.set_level(s, "@m:localhost", "anxiety-panic", "nearby-group", NOW)
        store.opt_in(s, "@m:localhost", row.id, NOW)
        s.commit()
        assert store.levels(s, "@m:localhost") == {"anxiety-panic": "nearby-group"}
        assert store.levels(s, "@other:localhost") == {}
        erased = store.erase_member(s, "@m:localhost")
        s.commit()
        assert erased["exposure_levels"] == 1
        assert erased["session_reminders"] == 1
        assert store.levels(s, "@m:localhost") == {}
