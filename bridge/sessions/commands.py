"""What people say to Hearth about sessions.

Moderators and admins, in ``#hearth-moderators`` (answered there, as a notice in reply):

    !session help
    !session list
    !session add <space> "<title>" <repeat> at <HH:MM> <time zone> for <duration>
                 [from <YYYY-MM-DD>] [format peer-group|guided-exercise|exposure-practice]
                 [led by <words>] [with @facilitator ...]
        <repeat>: once <YYYY-MM-DD> | daily | weekly <days> | fortnightly <days>
                  | monthly <1st|2nd|3rd|4th|last> <day> | rrule:<RFC 5545 rule>
    !session lead <ID> add|remove @user
    !session cancel <ID> <YYYY-MM-DD>      (one date, in the session's own zone)
    !session end <ID>                      (a series a moderator added; a theme's is edited in its file)
    !session attendance <ID>

Members, in their private room with Hearth (``bridge.member_room`` hands these over), or in a session
room while they can post there (the answer then comes privately, and the command is removed from the
room, so the group is not filled with bot replies):

    !sessions [space]       the next sessions, their IDs, whether reminders are on
    !remind [<ID>]          reminders a day and 15 minutes before; !remind off [<ID>] stops them
    !level [<space> <level>|up|down|clear]   the member's own graded-exposure level (private)
    !start / !end           a facilitator: I am here / finish the session early
"""

from __future__ import annotations

import logging
import re
import shlex
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from bridge.gateway import GatewayError, TimelineEvent
from bridge.moderators.commands import command_text
from bridge.staff_room import reply_notice
from bridge.themes import shipped_themes
from config.sanctions import parse_duration
from spaces.models import ProvisionedRoom, ProvisionedSpace
from spaces.sessions import store
from spaces.sessions.recurrence import REPEAT_HELP, Recurrence, RecurrenceError, describe, parse_repeat, zone
from spaces.sessions.schedule import listing, when
from spaces.sessions.tables import SessionSeries

if TYPE_CHECKING:
    from bridge.sessions.desk import SessionDesk

log = logging.getLogger(__name__)

SESSION_HELP = (
    "Sessions (moderators and admins):\n"
    "!session list\n"
    '!session add <space> "<title>" <repeat> at <HH:MM> <time zone> for <duration> [from <YYYY-MM-DD>] '
    "[format peer-group|guided-exercise|exposure-practice] [led by <words>] [with @facilitator ...]\n"
    f"  <repeat>: {REPEAT_HELP}\n"
    '  e.g. !session add anxiety-panic "Evening check-in" weekly mon,thu at 19:00 Europe/London for 45m '
    "led by a trained volunteer with @sam:localhost\n"
    "!session lead <ID> add|remove @user   (who may open it; with nobody named, moderators and admins "
    "may, except for guided exercise)\n"
    "!session cancel <ID> <YYYY-MM-DD>   (one date, in the session's own time zone)\n"
    "!session end <ID>   (a series added here; a theme's session is changed in its theme file)\n"
    "!session attendance <ID>\n"
    "A session room is read-only between sessions; it opens when a session starts and a facilitator "
    "is there (they joined the room, or sent !start to Hearth), and closes at the end."
)
MEMBER_COMMANDS = frozenset({"!sessions", "!remind", "!level", "!start", "!end"})
KEYWORDS = frozenset({"from", "format", "led", "with"})
QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
OFF_WORDS = frozenset({"off", "stop", "no", "none"})


class Refused(ValueError):
    """The answer to a command that cannot be carried out."""


class SessionCommands:
    def __init__(self, desk: SessionDesk):
        self.desk = desk

    # --- moderators --------------------------------------------------------------------------

    async def moderator(self, ev: TimelineEvent, content: dict[str, Any]) -> None:
        text = command_text(content)
        cmd, _, rest = text.partition(" ")
        if cmd.lower() != "!session":
            return
        if ev.sender not in self.desk.hosts:
            await reply_notice(self.desk.gateway, ev, "Only moderators and admins can schedule sessions.")
            return
        try:
            answer = await self._moderate(ev.sender, rest.strip())
        except (Refused, store.SessionError, RecurrenceError) as e:
            answer = str(e)
        except ValueError as e:  # a duration, date or time that does not parse
            answer = f"{e}. !session help shows the syntax."
        await reply_notice(self.desk.gateway, ev, answer)

    async def _moderate(self, actor: str, rest: str) -> str:
        sub, _, arg = rest.partition(" ")
        sub, arg = sub.lower(), arg.strip()
        if sub in ("", "help"):
            return SESSION_HELP
        if sub == "list":
            return await self._list()
        if sub == "add":
            return await self._add(actor, arg)
        words = arg.split()
        if not words:
            raise Refused(f"!session {sub} needs a session ID. !session list shows them.")
        series_id = words[0].lower()
        if sub == "end":
            return await self._end(series_id)
        if sub == "cancel":
            if len(words) != 2:
                raise Refused("!session cancel <ID> <YYYY-MM-DD>: which date to cancel?")
            return await self._cancel(series_id, date.fromisoformat(words[1]))
        if sub == "lead":
            if len(words) != 3 or words[1].lower() not in ("add", "remove") or not words[2].startswith("@"):
                raise Refused("!session lead <ID> add|remove @user")
            return await self._lead(actor, series_id, words[2], add=words[1].lower() == "add")
        if sub == "attendance":
            return await self._attendance(series_id)
        raise Refused(f"I don't know !session {sub}. {SESSION_HELP}")

    async def _list(self) -> str:
        def read(s: Session) -> list[tuple[SessionSeries, list[str]]]:
            return [(r, store.facilitators(s, r.id)) for r in store.active_series(s)]

        rows = await self.desk.db(read)
        if not rows:
            return "No sessions are scheduled."
        lines = []
        for row, named in rows:
            view = store.SeriesView.of(row)
            who = (
                ", ".join(named)
                if named
                else "moderators and admins"
                if row.format != "guided-exercise"
                else "nobody named yet"
            )
            origin = "theme" if row.theme_key else f"added by {row.created_by}"
            lines.append(
                f"{row.id}: {row.title} ({row.space}, {row.format}, {origin}): {describe(view.recurrence)}; "
                f"led by {row.led_by}; may open it: {who}"
            )
        return "\n".join(lines)

    async def _add(self, actor: str, arg: str) -> str:
        try:
            words = shlex.split(arg.translate(QUOTES))
        except ValueError as e:
            raise Refused(f"{e}: put the title in quotes") from None
        if len(words) < 2:
            raise Refused(SESSION_HELP)
        space, title = words[0], words[1].strip()
        if not title or len(title) > 200:
            raise Refused("Give the session a title in quotes (up to 200 characters).")
        parsed = parse_add(words[2:])
        room = await self._session_room(space)
        tz = zone(parsed["zone"])
        first_day: date = parsed["first"] or self.desk.clock.now().astimezone(tz).date()
        rule = parse_repeat(parsed["repeat"], first_day)
        minutes = int(parsed["duration"].total_seconds() // 60)
        recurrence = Recurrence(
            rule, parsed["zone"], datetime.combine(first_day, parsed["at"]), parsed["duration"]
        )
        now = self.desk.clock.now()
        fmt = parsed["format"]
        led_by = parsed["led_by"] or (
            "a physiotherapist" if fmt == "guided-exercise" else "a trained volunteer facilitator"
        )

        def write(s: Session) -> SessionSeries:
            row = store.add_series(
                s,
                space=space,
                room_alias=room,
                title=title,
                format=fmt,
                led_by=led_by,
                recurrence=recurrence,
                facilitators=parsed["with"],
                by=actor,
                now=now,
            )
            store.materialize(s, now, self.desk.horizon)
            return row

        row = await self.desk.db(write)
        log.info("session series %s added by a moderator (%d min)", row.id, minutes)
        await self.desk.changed(room)
        first = recurrence.next_starts(now, 1)
        nxt = f" First: {when(recurrence, first[0])}." if first else ""
        named = f" Facilitators: {', '.join(parsed['with'])}." if parsed["with"] else ""
        return (
            f"Added {row.id}: {title}, {describe(recurrence)}, in {room}. Led by {led_by}.{named}{nxt} "
            f"Members opt in to reminders with !remind {row.id}."
        )

    async def _session_room(self, space: str) -> str:
        def read(s: Session) -> tuple[bool, list[str]]:
            known = s.get(ProvisionedSpace, space) is not None
            rows = s.exec(select(ProvisionedRoom).where(ProvisionedRoom.space_slug == space)).all()
            return known or bool(rows), [r.alias for r in rows if r.kind == "group-session"]

        known, rooms = await self.desk.db(read)
        if not known:
            raise Refused(f"There is no space {space!r}: use its short name, e.g. anxiety-panic.")
        if not rooms:
            raise Refused(f"{space} has no group-session room to hold sessions in.")
        return sorted(rooms)[0]

    async def _end(self, series_id: str) -> str:
        now = self.desk.clock.now()

        def write(s: Session) -> SessionSeries:
            row = store.series(s, series_id)
            if row.theme_key is not None:
                raise Refused(
                    f"{row.title} comes from the {row.space} theme: change config/spaces/{row.space}.toml "
                    "and run `hearth spaces apply`, or cancel single dates with !session cancel."
                )
            if row.ended_at is not None:
                raise Refused(f"{row.title} has ended already.")
            store.end_series(s, row, now)
            return row

        row = await self.desk.db(write)
        await self.desk.changed(row.room_alias)
        return f"Ended {row.id}: {row.title}. Its dates still to come are cancelled and its reminders stop."

    async def _cancel(self, series_id: str, day: date) -> str:
        now = self.desk.clock.now()

        def write(s: Session) -> tuple[SessionSeries, datetime]:
            occ = store.cancel(s, series_id, day, now)
            return store.series(s, series_id), occ.starts_at

        row, start = await self.desk.db(write)
        return f"Cancelled {row.title} on {when(store.SeriesView.of(row).recurrence, start)}."

    async def _lead(self, actor: str, series_id: str, user: str, *, add: bool) -> str:
        now = self.desk.clock.now()

        def write(s: Session) -> tuple[SessionSeries, list[str]]:
            row = store.series(s, series_id)
            store.set_facilitator(s, row.id, user, add=add, by=actor, now=now)
            s.flush()
            return row, store.facilitators(s, row.id)

        row, named = await self.desk.db(write)
        who = (
            ", ".join(named)
            if named
            else "nobody named: moderators and admins may open it"
            + (" (not guided exercise)" if row.format == "guided-exercise" else "")
        )
        return f"{row.title}: may open it now: {who}."

    async def _attendance(self, series_id: str) -> str:
        now = self.desk.clock.now()

        def read(s: Session) -> tuple[SessionSeries, list[Any]]:
            row = store.series(s, series_id)
            return row, store.recent(s, row.id, now)

        row, occs = await self.desk.db(read)
        if not occs:
            return f"{row.title} has not met yet."
        view = store.SeriesView.of(row)
        lines = [f"{row.title}, last sessions (who came is counted, never what they wrote):"]
        for occ in occs:
            lines.append(
                f"- {when(view.recurrence, occ.starts_at)}: {occ.status}; {occ.joined} joined, {occ.posted} posted"
            )
        return "\n".join(lines)

    # --- members -----------------------------------------------------------------------------

    async def in_room(self, ev: TimelineEvent, alias: str, body: str) -> None:
        """A member's command in a session room: answered privately, and taken out of the room."""
        cmd, _, arg = body.strip().partition(" ")
        if cmd.lower() not in MEMBER_COMMANDS:
            return
        answer = await self.member(ev.sender, cmd.lower(), arg.strip())
        try:
            dm = await self.desk.dm_room(ev.sender)
            await self.desk.gateway.send(dm, _text(answer), txn_id=f"hearth.session-answer.{ev.event_id}")
            await self.desk.gateway.redact(ev.room_id, ev.event_id, "Answered privately by Hearth")
        except (GatewayError, TimeoutError, OSError) as e:
            log.warning("could not answer a session command privately: %s", e)

    async def member(self, user: str, cmd: str, arg: str) -> str:
        """The answer to ``!sessions``, ``!remind``, ``!level``, ``!start`` or ``!end``."""
        try:
            if cmd == "!sessions":
                return await self._sessions(user, arg)
            if cmd == "!remind":
                return await self._remind(user, arg)
            if cmd == "!level":
                return await self._level(user, arg)
            if cmd in ("!start", "!end"):
                return await self.desk.facilitate(user, start=cmd == "!start")
        except (Refused, store.SessionError) as e:
            return str(e)
        return "I don't know that command."

    async def _sessions(self, user: str, arg: str) -> str:
        now = self.desk.clock.now()
        space = arg.split()[0].lower() if arg else None
        per = 3 if space else 1

        def read(s: Session) -> tuple[list[tuple[SessionSeries, list[Any]]], set[str]]:
            return store.upcoming(s, now, per_series=per, space=space), store.reminded_series(s, user)

        rows, reminded = await self.desk.db(read)
        names = {slug: t.name for slug, t in shipped_themes().items()}
        out = []
        for row, occs in rows:
            room = await self.desk.room_id(row.room_alias)
            room_name = (await self.desk.names.room(room) if room else None) or row.room_alias
            out.append((store.SeriesView.of(row), [o.starts_at for o in occs], room_name))
        return listing(out, reminded, names)

    async def _remind(self, user: str, arg: str) -> str:
        now = self.desk.clock.now()
        words = arg.lower().split()
        if not words:

            def read(s: Session) -> list[SessionSeries]:
                ids = store.reminded_series(s, user)
                return [r for r in store.active_series(s) if r.id in ids]

            rows = await self.desk.db(read)
            if not rows:
                return "You have no session reminders. !sessions lists the sessions; !remind <ID> turns reminders on."
            return (
                "Reminders on for: "
                + "; ".join(f"{r.title} [{r.id}]" for r in rows)
                + ". !remind off <ID> stops one."
            )
        if words[0] in OFF_WORDS:
            target = words[1] if len(words) > 1 else None
            n = await self.desk.db(lambda s: store.opt_out(s, user, target))
            return f"Done: reminders off ({n})." if n else "You had no reminders there."
        row = await self.desk.db(lambda s: store.opt_in(s, user, words[0], now))
        log.info("a member turned on reminders for session series %s", row.id)
        return (
            f"Reminders on for {row.title}: I'll write to you here a day and 15 minutes before each session. "
            f"!remind off {row.id} stops them."
        )

    async def _level(self, user: str, arg: str) -> str:
        ladders = {
            slug: (t, lad) for slug, t in shipped_themes().items() if (lad := store.ladder(t)) is not None
        }
        mine = await self.desk.db(lambda s: store.levels(s, user))
        words = arg.split()
        if not words:
            lines = ["Your practice levels (only you see these; nobody else, not even moderators):"]
            for slug, (theme, lad) in sorted(ladders.items()):
                current = mine.get(slug)
                ids = [lv.id for lv in lad.levels]
                label = next((lv.label for lv in lad.levels if lv.id == current), None)
                now_at = (
                    f"you're at '{label}' ({ids.index(str(current)) + 1} of {len(ids)})"
                    if label
                    else "not chosen yet"
                )
                options = ", ".join(f"{lv.id} ({lv.label})" for lv in lad.levels)
                lines.append(f"- {theme.name} [{slug}]: {now_at}. Levels: {options}.")
            lines.append("Send !level <space> <level>, or up, down or clear. Step down whenever you like.")
            return "\n".join(lines)
        slug = _one_of(words[0].lower(), list(ladders))
        theme, lad = ladders[slug]
        ids = [lv.id for lv in lad.levels]
        choice = words[1].lower() if len(words) > 1 else ""
        current = mine.get(slug)
        if choice == "clear":
            level: str | None = None
        elif choice in ("up", "down"):
            at = ids.index(current) if current in ids else -1
            at = min(at + 1, len(ids) - 1) if choice == "up" else max(at - 1, 0)
            level = ids[at]
        elif choice in ids:
            level = choice
        else:
            raise Refused(f"{theme.name}'s levels are: {', '.join(ids)} (or up, down, clear).")
        now = self.desk.clock.now()
        await self.desk.db(lambda s: store.set_level(s, user, slug, level, now))
        if level is None:
            return f"Cleared your level for {theme.name}."
        lv = lad.levels[ids.index(level)]
        return f"{theme.name}: you're at '{lv.label}' ({ids.index(level) + 1} of {len(ids)}). {lv.description} Only you see this."


def parse_add(words: list[str]) -> dict[str, Any]:
    """``<repeat> at <HH:MM> <zone> for <duration> [from <date>] [format <f>] [led by <words>]
    [with @user ...]`` as its parts; ``ValueError`` (or :class:`Refused`) says what is wrong."""
    if "at" not in words:
        raise Refused(f"Say when: ... at <HH:MM> <time zone> for <duration>. {REPEAT_HELP}")
    i = words.index("at")
    repeat = words[:i]
    first: date | None = None
    if repeat[:1] == ["once"]:
        if len(repeat) != 2:
            raise Refused("once needs its date: once <YYYY-MM-DD>")
        first, repeat = date.fromisoformat(repeat[1]), ["once"]
    tail = words[i + 1 :]
    if len(tail) < 4 or tail[2] != "for":
        raise Refused("... at <HH:MM> <time zone> for <duration>, e.g. at 19:00 Europe/London for 75m")
    if not re.fullmatch(r"\d{1,2}:\d{2}", tail[0]):
        raise Refused(f"{tail[0]!r} is not a time like 19:00")
    at = time.fromisoformat(tail[0].zfill(5))
    duration = parse_duration(tail[3] if not tail[3].isdigit() else f"{tail[3]}m")
    if duration is None:
        raise Refused("A session needs a length, e.g. 60m or 1h.")
    out: dict[str, Any] = {
        "repeat": " ".join(repeat),
        "first": first,
        "at": at,
        "zone": tail[1],
        "duration": duration,
        "format": "peer-group",
        "led_by": "",
        "with": [],
    }
    rest = tail[4:]
    while rest:
        key = rest.pop(0).lower()
        if key == "from" and rest:
            out["first"] = date.fromisoformat(rest.pop(0))
        elif key == "format" and rest:
            out["format"] = rest.pop(0).lower()
        elif key == "led" and rest[:1] == ["by"]:
            rest.pop(0)
            words_ = []
            while rest and rest[0].lower() not in KEYWORDS:
                words_.append(rest.pop(0))
            out["led_by"] = " ".join(words_)[:200]
        elif key == "with":
            while rest and rest[0].startswith("@"):
                out["with"].append(rest.pop(0).rstrip(","))
        else:
            raise Refused(f"I don't understand {key!r} there. {SESSION_HELP}")
    return out


def _one_of(prefix: str, options: list[str]) -> str:
    found = [o for o in options if o == prefix] or [o for o in options if o.startswith(prefix)]
    if len(found) != 1:
        raise Refused(f"Which space? Spaces with a practice ladder: {', '.join(sorted(options))}.")
    return found[0]


def _text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "m.mentions": {}}
