"""The sessions desk's timers on a real APScheduler and a real database, with a controllable clock:
after downtime, a missed opening or closing is caught up by the misfire policy when the timers are
placed again (at start-up, or when the clock moves), a reminder runs only while it makes sense and
never twice. Matrix is a small recording stand-in here; tests/e2e/test_sessions.py does it all on a
real Synapse. Also the grammar of ``!session add``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from bridge.clock import SystemClock
from bridge.scheduler import Scheduler
from bridge.sessions.commands import Refused, parse_add
from bridge.sessions.desk import SessionDesk
from config.settings import SessionsSettings
from spaces.models import ProvisionedRoom
from spaces.sessions import store
from spaces.sessions.recurrence import Recurrence
from spaces.sessions.tables import SessionOccurrence
from spaces.staff import load_staff

ROOM, ALIAS = "!group:localhost", "#e2e-group:localhost"


class RecordingMatrix:
    """The few homeserver calls the desk makes, recorded (power levels kept like a room's state)."""

    user_id = "@hearth:localhost"

    def __init__(self) -> None:
        self.state: dict[tuple[str, str, str], dict[str, Any]] = {
            (ROOM, "m.room.power_levels", ""): {"users": {}, "events_default": 50, "users_default": 0}
        }
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.levels: list[int] = []

    async def get_state_event(self, room: str, event_type: str, key: str = "") -> dict[str, Any] | None:
        return self.state.get((room, event_type, key))

    async def put_state(self, room: str, event_type: str, content: dict[str, Any], key: str = "") -> str:
        self.state[(room, event_type, key)] = content
        if event_type == "m.room.power_levels":
            self.levels.append(content["events_default"])
        return "$state"

    async def send(self, room: str, content: dict[str, Any], txn_id: str | None = None) -> str:
        self.sent.append((room, content))
        return f"$e{len(self.sent)}"

    def reminders(self) -> list[str]:
        return [c["body"] for room, c in self.sent if room.startswith("!dm-") and c["msgtype"] == "m.text"]


async def until(predicate, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def desk(engine):
    clock = SystemClock()
    scheduler = Scheduler(clock)
    scheduler.aps.start()
    matrix = RecordingMatrix()
    logged_in = asyncio.Event()
    logged_in.set()

    async def dm_room(user: str) -> str:
        return f"!dm-{user}"

    with Session(engine) as s:
        s.add(
            ProvisionedRoom(
                alias=ALIAS,
                room_id=ROOM,
                space_slug="anxiety-panic",
                room_slug="group-session",
                kind="group-session",
                capacity=10,
                profile="peer-strict",
                members_may_post=False,
                updated_at=datetime.now(UTC),
            )
        )
        s.commit()
    staff = load_staff()
    desk = SessionDesk(
        SessionsSettings(),
        engine,
        matrix,  # type: ignore[arg-type]
        scheduler,
        clock,
        staff=lambda: staff,
        dm_room=dm_room,
        moderators_room=None,  # type: ignore[arg-type]
        logged_in=logged_in,
    )
    yield desk, clock, matrix
    scheduler.shutdown()
    desk.close()


def series_starting(engine, start: datetime, *, subscriber: str | None = None) -> str:
    with Session(engine) as s:
        row = store.add_series(
            s,
            space="anxiety-panic",
            room_alias=ALIAS,
            title="Evening group",
            format="peer-group",
            led_by="a trained volunteer",
            recurrence=Recurrence.of(
                "FREQ=WEEKLY", "UTC", start.astimezone(UTC).replace(tzinfo=None).isoformat(), 30
            ),
            facilitators=["@host:localhost"],
            by="@moderator1:localhost",
            now=start - timedelta(days=2),
        )
        if subscriber:
            store.opt_in(s, subscriber, row.id, start - timedelta(days=2))
        s.commit()
        return row.id


def occurrence(engine, series_id: str, start: datetime) -> SessionOccurrence:
    with Session(engine) as s:
        return s.get(SessionOccurrence, store.occurrence_id(series_id, start))


async def test_a_restart_across_the_start_opens_the_room_late_and_one_across_the_end_closes_it(desk, engine):
    desk, clock, matrix = desk
    start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    series_id = series_starting(engine, start, subscriber="@m:localhost")
    clock.advance((start - timedelta(minutes=10) - clock.now()).total_seconds())
    await desk.refresh()
    assert await desk.facilitate("@host:localhost", start=True)  # there 10 minutes early
    assert matrix.levels == []  # not started: still read-only
    await until(
        lambda: len(matrix.reminders()) == 1, "the 15-minute reminder (placed late, within its grace)"
    )

    # "Down" from here until 5 minutes after the start; "starting again" places the timers afresh.
    clock.advance(15 * 60)
    await desk.replace_timers()
    await until(lambda: matrix.levels == [0], "the opening, caught up by the misfire policy")
    assert occurrence(engine, series_id, start).status == "open"
    assert "has started" in matrix.sent[-1][1]["body"]

    # Down again across the end: the closing is caught up the same way.
    clock.advance(40 * 60)
    await desk.replace_timers()
    await until(lambda: matrix.levels == [0, 50], "the closing, caught up")
    occ = occurrence(engine, series_id, start)
    assert occ.status == "closed"
    assert len(matrix.reminders()) == 1  # a reminder is never sent twice, whatever is placed again


async def test_a_late_reminder_still_goes_within_its_grace_but_not_after_the_session_started(desk, engine):
    desk, clock, matrix = desk
    start = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    series_starting(engine, start, subscriber="@m:localhost")
    clock.advance((start - timedelta(hours=23) - clock.now()).total_seconds())  # an hour after "day" was due
    await desk.refresh()
    await until(lambda: len(matrix.reminders()) == 1, "the day-before reminder, an hour late")
    assert "starts tomorrow" in matrix.reminders()[0]
    clock.advance(23 * 3600 + 60)  # past the start: the 15-minute reminder is pointless now
    await desk.replace_timers()
    await asyncio.sleep(1.0)
    assert len(matrix.reminders()) == 1
    assert matrix.levels == []  # nobody led it: the room never opened


async def test_a_session_nobody_led_is_missed_and_the_room_stays_read_only(desk, engine):
    desk, clock, matrix = desk
    start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    series_id = series_starting(engine, start)
    await desk.refresh()  # its date is made while Hearth runs, a day ahead
    clock.advance((start + timedelta(hours=1) - clock.now()).total_seconds())  # then down through all of it
    await desk.replace_timers()
    await until(lambda: occurrence(engine, series_id, start).status == "missed", "the session marked missed")
    assert 0 not in matrix.levels


def test_the_add_grammar_reads_every_part_and_says_what_is_wrong():
    got = parse_add(
        "weekly mon,thu at 19:00 Europe/London for 45m from 2027-01-04 format guided-exercise "
        "led by a chartered physiotherapist with @physio:localhost @sam:localhost".split()
    )
    assert got["repeat"] == "weekly mon,thu"
    assert got["zone"] == "Europe/London"
    assert got["duration"] == timedelta(minutes=45)
    assert got["first"] == date(2027, 1, 4)
    assert got["format"] == "guided-exercise"
    assert got["led_by"] == "a chartered physiotherapist"
    assert got["with"] == ["@physio:localhost", "@sam:localhost"]
    once = parse_add("once 2027-02-01 at 9:30 UTC for 60".split())
    assert once["first"] == date(2027, 2, 1)
    assert once["repeat"] == "once"
    assert once["duration"] == timedelta(minutes=60)
    for bad, why in [
        ("weekly wed 19:00 UTC for 1h", "Say when"),
        ("weekly wed at 7pm UTC for 1h", "not a time"),
        ("once at 19:00 UTC for 1h", "once needs its date"),
        ("weekly wed at 19:00 UTC 1h", "for <duration>"),
        ("weekly wed at 19:00 UTC for 1h then more", "don't understand"),
    ]:
        with pytest.raises(Refused, match=why):
            parse_add(bad.split())


async def test_a_group_room_left_open_from_before_sessions_is_made_read_only_once(desk, engine):
    desk, clock, matrix = desk
    matrix.state[(ROOM, "m.room.power_levels", "")]["events_default"] = 0  # open to all, as themes had it
    await desk.refresh()
    assert matrix.levels == [50]
    matrix.state[(ROOM, "m.room.power_levels", "")]["events_default"] = 0
    await desk.refresh()  # checked once per process: a later open is a session's business
    assert matrix.levels == [50]
