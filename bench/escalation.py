"""Crisis escalation latency: from a member sending a crisis message to the alert in the staff room.

    .venv/bin/python bench/escalation.py [--data-dir .data] [--crises 120] [--rate 20] [--every 1.0]
    .venv/bin/python bench/escalation.py --throwaway [--synapse-database postgresql://...]
                                                          # a fresh Synapse + Hearth in a temp dir

Against a running stack (`make up` by default), in Hearth's provisioned support rooms (the pipeline
screens only those): registers members (rate-limit exempt), joins ``--talkers`` of them to the
``--background`` rooms and, while they send ordinary messages at ``--rate`` per second, sends
``--crises`` crisis messages in the ``--room`` rooms, each from a different member (so each is its own
episode), one every ``--every`` seconds. Crisis members are dealt over the crisis rooms within each
room's capacity: a p99 needs 100 or more crises (below that it is the worst one), and a support room
holds 12 to 25 people. The defaults are the provisioned catalogue's rooms (``--room`` and
``--background`` replace them; give an alias or a room ID, repeated for several).

A watcher long-polls ``/sync`` on ``#hearth-staff`` and notes when each alert arrives: an ``m.text``
whose ``org.hearth.escalation.event_id`` is the crisis message's ID. The watcher (``--watch-as``) is by
default a member of the staff room only, as an on-call clinician's client is; ``--watch-as bot``
watches on a second device of the bot's account, which is in every room, so Synapse wakes that sync for
every background message too (how runs before this option measured). Prints p50/p95/p99/max of send ->
alert (one clock: this process's monotonic clock) and how many alerts never came, first for
``--baseline`` crises sent with no background load, then under the load, and the ratio of the two: the
baseline is this run's, on this machine as it is now (a shared machine's cores run faster or slower
from one minute to the next). Target: p99 <= 1 s under the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge import stack  # noqa: E402
from bridge.capacity import MEMBERS_TTL_SECONDS  # noqa: E402

CRISIS_TEXTS = [  # invented for this benchmark (imminent tier)
    "I have everything I need and tonight is when I do it",
    "the pills are counted out on my desk, I'm taking them after everyone's asleep",
    "I've just taken the whole box of paracetamol",
    "I'm on the roof and I'm going to jump",
    "by the time anyone reads this I'll be gone",
]
ORDINARY_TEXTS = [
    "morning all, slept a bit better last night",
    "thanks for listening yesterday, it helped",
    "anyone else find Mondays the hardest?",
    "went for a short walk today, small win",
    "the breathing exercise from the group session really works for me",
]


STAFF_FILE = Path(__file__).resolve().parents[1] / "config" / "staff.toml"
# Provisioned rooms (alias localparts, config/spaces/): crisis messages in the first list, room for
# about 130 crisis members in all (capacities 20, 25, 25, 25, 14, 14, 14 less the bot); the background talk
# in the second (capacity 25 each, so up to 96 talkers). Disjoint, so a crisis member's room is
# never full of talkers.
CRISIS_ROOMS = ["trauma-ptsd-discussion", "addiction-recovery-discussion", "chronic-pain-rehab-discussion",
                "new-parents-discussion", "addiction-recovery-check-in", "chronic-pain-rehab-check-in",
                "new-parents-check-in"]
BACKGROUND_ROOMS = ["anxiety-panic-discussion", "grief-loss-discussion", "carers-discussion",
                    "depression-low-mood-discussion"]


class CpuShare:
    """CPU used during the measured window, from /proc (Linux): Synapse, Hearth, this bench, and
    everything else on the machine. A figure taken while other jobs used the cores says so."""

    def __init__(self, layout: stack.StackLayout):
        self.pids = {"Synapse": self._pid(layout.synapse_pid), "Hearth": self._pid(layout.hearth_pid),
                     "this bench": os.getpid()}
        self.start = self._sample()

    @staticmethod
    def _pid(path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _sample(self) -> tuple[float, int, dict[str, int]] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
            busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
            procs: dict[str, int] = {}
            for name, pid in self.pids.items():
                if pid is not None:
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    procs[name] = int(stat[11]) + int(stat[12])  # utime + stime
            return time.monotonic(), busy, procs
        except (OSError, ValueError, IndexError):
            return None

    def report(self) -> str:
        end = self._sample()
        if self.start is None or end is None:
            return "CPU shares: not available (no /proc)"
        hz = os.sysconf("SC_CLK_TCK")
        seconds = end[0] - self.start[0]
        used = {name: (end[2][name] - self.start[2].get(name, 0)) / hz / seconds * 100 for name in end[2]}
        other = (end[1] - self.start[1]) / hz / seconds * 100 - sum(used.values())
        parts = ", ".join(f"{name} {pct:.0f}%" for name, pct in used.items())
        return (f"CPU while measuring (100% = one core; {os.cpu_count()} cores): {parts}, "
                f"everything else {max(0.0, other):.0f}%")


def q(s: str) -> str:
    return quote(s, safe="")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: with few samples p99 is the worst one)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Client:
    def __init__(self, http: httpx.AsyncClient, user_id: str, token: str):
        self.http = http
        self.user_id = user_id
        self.token = token

    async def call(self, method: str, path: str, body: Any = None, http_timeout: float = 30) -> dict[str, Any]:
        r = await self.http.request(method, path, json=body, timeout=http_timeout,
                                    headers={"Authorization": f"Bearer {self.token}"})
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")
        return r.json() if r.content else {}

    async def send(self, room_id: str, text: str) -> str:
        txn = secrets.token_hex(8)
        body = {"msgtype": "m.text", "body": text}
        data = await self.call("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{txn}", body)
        return str(data["event_id"])


async def register(http: httpx.AsyncClient, layout: stack.StackLayout, prefix: str, admin_token: str | None,
                   admin: bool = False) -> Client:
    name = f"{prefix}{secrets.token_hex(4)}"
    token = await asyncio.to_thread(stack.register_user, layout, name, secrets.token_hex(12), admin)
    assert token is not None
    user_id = f"@{name}:{layout.server_name}"
    await asyncio.to_thread(stack.exempt_from_ratelimit, layout, admin_token or token, user_id)
    return Client(http, user_id, token)


class StaffRoomWatcher:
    """Long-polls /sync (filtered to the staff room) and records when each alert arrives."""

    def __init__(self, bot: Client, room_id: str):
        self.bot = bot
        self.room_id = room_id
        self.arrived: dict[str, float] = {}  # crisis event id -> monotonic arrival time
        self.arrived_wall: dict[str, float] = {}  # ... and wall-clock arrival (for the breakdown)
        self.alert_ts: dict[str, float] = {}  # crisis event id -> the alert's origin_server_ts (s)
        self.alert_id: dict[str, str] = {}  # crisis event id -> the alert's event id
        self.mentioned: dict[str, list[str]] = {}  # crisis event id -> whom the alert mentions
        self.ready = asyncio.Event()

    async def run(self) -> None:
        flt = json.dumps({"room": {"rooms": [self.room_id], "timeline": {"limit": 50, "types": ["m.room.message"]},
                                   "state": {"lazy_load_members": True}, "ephemeral": {"types": []}},
                          "presence": {"types": []}, "account_data": {"types": []}})
        first = await self.bot.call("GET", f"/_matrix/client/v3/sync?timeout=0&filter={q(flt)}")
        since = first["next_batch"]
        self.ready.set()
        while True:
            data = await self.bot.call("GET", f"/_matrix/client/v3/sync?timeout=30000&since={q(since)}&filter={q(flt)}",
                                       http_timeout=60)
            now, wall = time.monotonic(), time.time()
            since = data["next_batch"]
            room = data.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for ev in room.get("timeline", {}).get("events", []):
                content = ev.get("content") or {}
                summary = content.get("org.hearth.escalation")
                if not summary or "m.relates_to" in content:
                    continue  # edits and re-pages are not the first alert
                crisis_id = str(summary.get("event_id"))
                if crisis_id not in self.arrived:
                    self.arrived[crisis_id] = now
                    self.arrived_wall[crisis_id] = wall
                    self.alert_ts[crisis_id] = ev["origin_server_ts"] / 1000
                    self.alert_id[crisis_id] = ev["event_id"]
                    self.mentioned[crisis_id] = list((content.get("m.mentions") or {}).get("user_ids") or [])


async def background(clients: list[tuple[Client, str]], rate: float, stop: asyncio.Event,
                     counter: list[int]) -> None:
    """Ordinary messages at ``rate`` per second, evenly spaced (open loop: a slow send never slows the rest)."""
    interval = 1 / rate
    start = time.monotonic()
    i = 0
    pending: set[asyncio.Task[str]] = set()
    # A tag per run: every run's texts are new to Hearth, so none is served from the embedding cache
    # that an earlier run on a long-lived stack filled (real members do not repeat last week's words).
    run = secrets.token_hex(3)
    while not stop.is_set():
        client, room = clients[i % len(clients)]
        # distinct texts from many members: the behaviour detector rightly mutes floods and repeats
        # each member cycles through the texts (rotated per round), so no one repeats themselves
        text = ORDINARY_TEXTS[(i + i // len(clients)) % len(ORDINARY_TEXTS)]
        task = asyncio.create_task(client.send(room, f"{text} ({run}-{i})"))
        pending.add(task)

        def done(t: asyncio.Task[str]) -> None:
            pending.discard(t)
            counter[0] += not t.exception()

        task.add_done_callback(done)
        i += 1
        await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
    if pending:
        await asyncio.wait(pending, timeout=10)


async def room_path(bot: Client, room: str) -> list[str]:
    """What a member joins to enter ``room`` (ID or alias): its space(s) first, since a provisioned
    room is restricted to its space's members, then the room's ID, last."""
    if room.startswith("#"):
        try:
            room = str((await bot.call("GET", f"/_matrix/client/v3/directory/room/{q(room)}"))["room_id"])
        except RuntimeError as e:
            raise SystemExit(f"room {room} not found ({e}): are the spaces provisioned (`make up` does it)?") from e
    state: Any = await bot.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/state")
    parents = [e["state_key"] for e in state if e.get("type") == "m.space.parent" and e.get("content")]
    return [*parents, room]


async def join_path(user: Client, path: list[str], joined: list[str]) -> None:
    """``user`` joins each room of ``path`` in order, appending each to ``joined`` as soon as it is
    joined (so a failure halfway still leaves them)."""
    for r in path:
        await user.call("POST", f"/_matrix/client/v3/join/{q(r)}", {})
        joined.append(r)


async def free_places(bot: Client, room_id: str) -> int:
    """How many more members ``room_id`` takes: its ``org.hearth.room.scene`` capacity (the gate
    refuses joins beyond it) less its joined members; unlimited (a large number) without one."""
    try:
        scene = await bot.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/org.hearth.room.scene/")
    except RuntimeError:  # 404: not a provisioned room
        return 10_000
    members = await bot.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")
    return max(0, int(scene.get("capacity", 10_000)) - len(members.get("joined", {})))


async def bench(layout: stack.StackLayout, args: argparse.Namespace) -> int:
    settings = tomllib.loads(layout.hearth_toml.read_text())
    async with httpx.AsyncClient(base_url=layout.hs_url) as http:
        health = await http.get(f"{layout.hearth_url}/healthz", timeout=5)
        print(f"hearth /healthz: {health.status_code}")
        if (url := layout.synapse_database_url()) is not None:
            off = await asyncio.to_thread(stack.refresh_planner_statistics, url)
            print("Synapse on PostgreSQL, autovacuum "
                  + ("OFF on that server: ran ANALYZE first, as autovacuum would have" if off else "on"))
        admin = await register(http, layout, "benchadmin", None, admin=True)
        # A token for the bot's account from the admin API (no password login: that is rate-limited
        # per account, and the bot itself must not be locked out by a bench).
        bot_login = await admin.call("POST", f"/_synapse/admin/v1/users/{q(layout.bot_user_id)}/login", {})
        bot = Client(http, layout.bot_user_id, str(bot_login["access_token"]))
        alias = f"#{settings.get('escalation', {}).get('staff_room_alias', 'hearth-staff')}:{layout.server_name}"
        staff_room = str((await bot.call("GET", f"/_matrix/client/v3/directory/room/{q(alias)}"))["room_id"])

        await clinicians_in_staff_room(layout, admin, bot, staff_room, register=args.throwaway)
        paths = [await room_path(bot, r) for r in args.room or [f"#{a}:{layout.server_name}" for a in CRISIS_ROOMS]]
        talk_paths = [await room_path(bot, r)
                      for r in args.background or [f"#{a}:{layout.server_name}" for a in BACKGROUND_ROOMS]]
        joined: list[tuple[Client, list[str]]] = []
        try:
            return await measure(http, layout, args, admin, bot, staff_room, paths, talk_paths, joined)
        finally:
            for c, rooms_joined in joined:  # leave, so room capacity is free for the next run
                for r in reversed(rooms_joined):
                    try:
                        await c.call("POST", f"/_matrix/client/v3/rooms/{q(r)}/leave", {})
                    except RuntimeError:
                        pass
            await resolve_bench_escalations(layout, admin, [path[-1] for path in paths],
                                            {c.user_id for c, _ in joined})


async def clinicians_in_staff_room(layout: stack.StackLayout, admin: Client, bot: Client, staff_room: str,
                                   register: bool) -> None:
    """The clinicians of config/staff.toml joined to the staff room, as they are on a real deployment
    (a phone rings only for a room its owner has joined). With ``register`` (a throwaway stack) their
    accounts are registered first; on an operator's stack missing accounts are reported, not made."""
    staff = tomllib.loads(STAFF_FILE.read_text())  # noqa: ASYNC240 (a small file, once per run)
    for user in [c["user_id"] for c in staff.get("clinicians", [])]:
        localpart = user[1:].split(":", 1)[0]
        if register:
            await asyncio.to_thread(stack.register_user, layout, localpart, secrets.token_hex(12))
        try:
            login = await admin.call("POST", f"/_synapse/admin/v1/users/{q(user)}/login", {})
        except RuntimeError as e:
            print(f"clinician {user}: no account ({e}); their notifications cannot be measured")
            continue
        clinician = Client(admin.http, user, str(login["access_token"]))
        try:
            await bot.call("POST", f"/_matrix/client/v3/rooms/{q(staff_room)}/invite", {"user_id": user})
        except RuntimeError:
            pass  # already invited or joined
        await clinician.call("POST", f"/_matrix/client/v3/rooms/{q(staff_room)}/join", {})


async def resolve_bench_escalations(layout: stack.StackLayout, admin: Client, room_ids: list[str],
                                    senders: set[str]) -> None:
    """Resolve (false alarm) the escalations this run raised, through the staff API signed in (Matrix
    OpenID) as the first clinician in config/staff.toml, so that their SLA re-pages do not load the
    next run. The clinician's Matrix token comes from the admin API (their account must exist)."""
    staff = tomllib.loads(STAFF_FILE.read_text())  # noqa: ASYNC240 (a small file, once per run)
    clinicians = [c["user_id"] for c in staff.get("clinicians", [])]
    try:
        if not clinicians:
            raise RuntimeError("no clinician in the staff file")
        login = await admin.call("POST", f"/_synapse/admin/v1/users/{q(clinicians[0])}/login", {})
        clinician = Client(admin.http, clinicians[0], str(login["access_token"]))
        openid = await clinician.call("POST", f"/_matrix/client/v3/user/{q(clinician.user_id)}/openid/request_token", {})
        async with httpx.AsyncClient(base_url=layout.hearth_url, timeout=30) as hearth:
            r = await hearth.post("/api/auth/openid", json={"access_token": openid["access_token"],
                                                            "matrix_server_name": openid["matrix_server_name"]})
            r.raise_for_status()
            session = r.json()["token"]
    except (RuntimeError, httpx.HTTPError, KeyError) as e:
        print(f"escalations left open: could not sign in as a clinician to resolve them ({e})")
        return
    headers = {"Authorization": f"Bearer {session}"}
    async with httpx.AsyncClient(base_url=layout.hearth_url, headers=headers, timeout=30) as api:
        mine = []
        for room_id in room_ids:
            r = await api.get("/api/escalations",
                              params={"room_id": room_id, "status": ["open", "repaged"], "limit": 200})
            r.raise_for_status()
            mine += [e["id"] for e in r.json()["escalations"] if e["sender"] in senders]
        for esc_id in mine:
            await api.post(f"/api/escalations/{esc_id}/resolve",
                           json={"outcome": "false_alarm", "note": "raised by bench/escalation.py"})
        await api.post("/api/auth/sign-out")
    print(f"resolved the run's {len(mine)} escalations (false alarm, bench)")


@dataclass
class Sent:
    sent_at: dict[str, float] = field(default_factory=dict)  # crisis event ID -> monotonic send time
    sent_wall: dict[str, float] = field(default_factory=dict)  # ... and wall-clock send time
    sender_of: dict[str, Client] = field(default_factory=dict)
    room_of: dict[str, str] = field(default_factory=dict)

    def latencies(self, watcher: StaffRoomWatcher) -> list[float]:
        """Send -> alert in the staff room (seconds), for each crisis message whose alert arrived."""
        return [watcher.arrived[e] - t for e, t in self.sent_at.items() if e in watcher.arrived]


async def send_crises(members: list[tuple[Client, str]], every: float, watcher: StaffRoomWatcher,
                      wait_s: float) -> Sent:
    """One crisis message from each member in its room, ``every`` seconds apart; then wait up to
    ``wait_s`` for their alerts."""
    sent = Sent()
    for i, (member, room_id) in enumerate(members):
        t0, w0 = time.monotonic(), time.time()
        event_id = await member.send(room_id, CRISIS_TEXTS[i % len(CRISIS_TEXTS)])
        sent.sent_at[event_id] = t0
        sent.sent_wall[event_id] = w0
        sent.sender_of[event_id] = member
        sent.room_of[event_id] = room_id
        await asyncio.sleep(max(0.0, t0 + every - time.monotonic()))
    for _ in range(int(wait_s * 10)):
        if all(e in watcher.arrived for e in sent.sent_at):
            break
        await asyncio.sleep(0.1)
    return sent


async def measure(http: httpx.AsyncClient, layout: stack.StackLayout, args: argparse.Namespace, admin: Client,
                  bot: Client, staff_room: str, paths: list[list[str]], talk_paths: list[list[str]],
                  joined: list[tuple[Client, list[str]]]) -> int:
    """Join the members (recording each in ``joined`` for the caller to leave), run the load, measure.
    ``paths`` and ``talk_paths``: for each crisis room and each background room, what a member joins
    to enter it (its spaces, then the room)."""
    admin_token = admin.token

    async def crisis_members(n: int, rooms: list[list[str]]) -> list[tuple[Client, str]]:
        """``n`` members, dealt over ``rooms`` in turn while each has a free place."""
        free = [await free_places(bot, path[-1]) for path in rooms]
        if n > sum(free):
            raise SystemExit(f"{n} crisis members do not fit: the crisis rooms have {sum(free)} free places "
                             f"({', '.join(map(str, free))}); pass more --room or fewer --crises")
        members = []
        turn = 0
        for _ in range(n):
            while not free[turn % len(rooms)]:
                turn += 1
            path = rooms[turn % len(rooms)]
            free[turn % len(rooms)] -= 1
            turn += 1
            c = await register(http, layout, "benchcrisis", admin_token)
            joined.append((c, []))
            await join_path(c, path, joined[-1][1])
            members.append((c, path[-1]))
        return members

    baseline = await crisis_members(args.baseline, paths[:1])
    eyes = bot
    if args.watch_as == "member":
        # The staff room is invite-only: the bot invites a bench account, as it invites staff.
        eyes = await register(http, layout, "benchwatch", admin_token)
        await bot.call("POST", f"/_matrix/client/v3/rooms/{q(staff_room)}/invite", {"user_id": eyes.user_id})
        joined.append((eyes, []))
        await join_path(eyes, [staff_room], joined[-1][1])
    print(f"watching the staff room as {'its member ' + eyes.user_id if eyes is not bot else 'the bot (all rooms)'}")
    watcher = StaffRoomWatcher(eyes, staff_room)
    watch = asyncio.create_task(watcher.run())
    await watcher.ready.wait()

    # The baseline, in this run and on this machine: the same path with no background load. Its
    # members then leave, so the room has space for the measured ones (capacity counts are cached).
    idle: list[float] = []
    if baseline:
        b = await send_crises(baseline, args.every, watcher, args.timeout)
        idle = b.latencies(watcher)
        print(f"no background load: send -> alert, n={len(idle)}, missing={len(b.sent_at) - len(idle)}: "
              + (spread(idle) if idle else "none"))
        await report_resources(bot, b, args.timeout, indent="  ")
        for c, rooms_joined in joined:
            if any(c is member for member, _ in baseline):
                for r in reversed(rooms_joined):
                    await c.call("POST", f"/_matrix/client/v3/rooms/{q(r)}/leave", {})
                rooms_joined.clear()
        await asyncio.sleep(MEMBERS_TTL_SECONDS + 0.5)

    crisis = await crisis_members(args.crises, paths)
    # Background talkers: --talkers members spread over the background rooms, each joined through its space.
    talkers: list[tuple[Client, str]] = []
    for i in range(args.talkers):
        c = await register(http, layout, "benchtalk", admin_token)
        joined.append((c, []))
        path = talk_paths[i % len(talk_paths)]
        await join_path(c, path, joined[-1][1])
        talkers.append((c, path[-1]))

    print(f"crisis rooms {', '.join(path[-1] for path in paths)}; staff room {staff_room}; "
          f"{len(crisis)} crisis members, {len(talkers)} talkers")
    stop = asyncio.Event()
    sent_ok = [0]
    load = asyncio.create_task(background(talkers, args.rate, stop, sent_ok))
    load_started = time.monotonic()
    cpu = CpuShare(layout)
    await asyncio.sleep(args.warmup)

    sent = await send_crises(crisis, args.every, watcher, args.timeout)
    stop.set()
    await load
    load_seconds = time.monotonic() - load_started
    cpu_report = cpu.report()
    watch.cancel()

    latencies = sent.latencies(watcher)
    missing = len(sent.sent_at) - len(latencies)
    print(f"background load: {sent_ok[0]} ordinary messages in {load_seconds:.1f} s "
          f"({sent_ok[0] / load_seconds:.1f}/s, target {args.rate:g}/s)")
    print(cpu_report)
    if not latencies:
        print(f"no alert arrived for any of {len(sent.sent_at)} crisis messages within {args.timeout:g} s: the "
              "pipeline screens only Hearth's provisioned rooms: is every --room one of them, and is the "
              "pipeline wired to EscalationDesk.raise_for?")
        return 2
    print(f"send -> alert in the staff room, n={len(latencies)}, missing={missing}"
          + (" (under 100 crises, p99 is the worst one)"
             if len(latencies) < 100 else "") + ":")
    print("  " + "  ".join(f"p{p} {percentile(latencies, p) * 1000:.0f} ms" for p in (50, 95, 99))
          + f"  max {max(latencies) * 1000:.0f} ms")
    if idle:
        print(f"  under load / no load, same run: p50 {percentile(latencies, 50) / percentile(idle, 50):.1f}x, "
              f"p99 {percentile(latencies, 99) / percentile(idle, 99):.1f}x")
    met = percentile(latencies, 99) <= 1.0 and missing == 0
    print(f"target p99 <= 1 s with every alert delivered: {'met' if met else 'NOT met'}")
    await breakdown(bot, admin, sent, watcher, args.timeout)
    return 0 if met else 1


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"p50 {percentile(values, 50) * 1000:.0f} ms  p95 {percentile(values, 95) * 1000:.0f} ms  "
            f"max {max(values) * 1000:.0f} ms")


async def breakdown(bot: Client, admin: Client, sent: Sent, watcher: StaffRoomWatcher, wait_s: float) -> None:
    """Where the time goes, from the events' ``origin_server_ts`` (Synapse's clock, which is this
    machine's wall clock): send -> the crisis event created (Synapse, before its spam check);
    -> the alert event created (the spam check's call to Hearth, the pipeline, the commit, the bot's
    PUT reaching Synapse); -> the alert in the watcher's sync (persisting, notifying, syncing).
    Then send -> the person's crisis resources posted in their private room (through the bot's
    ``m.direct``), waiting up to ``wait_s`` more seconds for the last of them."""
    created, hearth, synced = [], [], []
    for event_id, w0 in sent.sent_wall.items():
        if event_id not in watcher.alert_ts:
            continue
        ev = await bot.call("GET", f"/_matrix/client/v3/rooms/{q(sent.room_of[event_id])}/event/{q(event_id)}")
        ts = ev["origin_server_ts"] / 1000
        created.append(ts - w0)
        hearth.append(watcher.alert_ts[event_id] - ts)
        synced.append(watcher.arrived_wall[event_id] - watcher.alert_ts[event_id])
    print("where the time goes (from origin_server_ts):")
    print(f"  send -> crisis event created in Synapse:          {spread(created)}")
    print(f"  crisis event -> alert event created (via Hearth): {spread(hearth)}")
    print(f"  alert created -> in the staff room's /sync:       {spread(synced)}")
    await report_notifications(admin, sent, watcher)
    await report_resources(bot, sent, wait_s)


async def report_notifications(admin: Client, sent: Sent, watcher: StaffRoomWatcher) -> None:
    """Send -> the notification of each clinician an alert mentions, from their own ``/notifications``
    (each entry's ``ts`` is when Synapse's push rules made it, the moment a phone is pushed), read
    with a token from the admin API. Counts alerts whose mentioned clinicians got no notification."""
    # Only the measured crises (the no-load baseline's are timed on their own).
    by_alert = {alert: crisis for crisis, alert in watcher.alert_id.items() if crisis in sent.sent_wall}
    users = sorted({u for crisis in by_alert.values() for u in watcher.mentioned.get(crisis, [])})
    if not users:
        print("  send -> the mentioned clinician's notification: no alert mentioned anyone (no one on call?)")
        return
    got: dict[tuple[str, str], float] = {}  # (user, crisis event id) -> seconds from send
    for user in users:
        try:
            login = await admin.call("POST", f"/_synapse/admin/v1/users/{q(user)}/login", {})
        except RuntimeError as e:
            print(f"  notifications of {user}: cannot read them ({e}); is the account registered?")
            continue
        clinician = Client(admin.http, user, str(login["access_token"]))
        since = ""
        for _ in range(50):  # pages of 100, newest first
            page = await clinician.call("GET", "/_matrix/client/v3/notifications?limit=100"
                                        + (f"&from={q(since)}" if since else ""))
            for n in page.get("notifications", []):
                crisis = by_alert.get(str((n.get("event") or {}).get("event_id")))
                if crisis is not None:
                    got[(user, crisis)] = n["ts"] / 1000 - sent.sent_wall[crisis]
            since = page.get("next_token") or ""
            if not since:
                break
    wanted = [(u, c) for c in by_alert.values() for u in watcher.mentioned.get(c, []) if u in users]
    seconds = [got[k] for k in wanted if k in got]
    print(f"  send -> the mentioned clinician's notification ({len(seconds)}/{len(wanted)} notified; "
          f"target within 2 s): {spread(seconds)}")


async def report_resources(bot: Client, sent: Sent, wait_s: float, indent: str = "") -> None:
    """Print send -> the person's crisis resources posted in their private room (found through the
    bot's ``m.direct``) for each crisis message, waiting up to ``wait_s`` for the last of them."""
    sent_wall, sender_of = sent.sent_wall, sent.sender_of
    deadline = time.monotonic() + wait_s
    resources: dict[str, float] = {}
    while True:
        try:
            direct = await bot.call("GET", f"/_matrix/client/v3/user/{q(bot.user_id)}/account_data/m.direct")
        except RuntimeError:  # 404 until the bot's first private room
            direct = {}
        for event_id, w0 in sent_wall.items():
            if event_id in resources:
                continue
            for dm in direct.get(sender_of[event_id].user_id, []):
                page = await bot.call("GET", f"/_matrix/client/v3/rooms/{q(dm)}/messages?dir=b&limit=20")
                stamps = [e["origin_server_ts"] / 1000 for e in page.get("chunk", [])
                          if "org.hearth.resources" in (e.get("content") or {})
                          and e["origin_server_ts"] / 1000 >= w0]
                if stamps:
                    resources[event_id] = min(stamps) - w0
                    break
        if len(resources) == len(sent_wall) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    print(f"{indent}send -> crisis resources posted to the person ({len(resources)}/{len(sent_wall)}): "
          f"{spread(list(resources.values()))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=".data", help="the stack to use (default: the `make up` one)")
    parser.add_argument("--throwaway", action="store_true",
                        help="start a fresh stack (spaces applied) in a temp dir instead")
    parser.add_argument("--synapse-database", metavar="URL",
                        help="with --throwaway: Synapse on this PostgreSQL database (created if missing)")
    parser.add_argument("--room", action="append", default=[],
                        help="a provisioned room (ID or alias) for the crisis messages; repeat for several (crisis "
                             "members are dealt over them within their capacity). Default: " + ", ".join(CRISIS_ROOMS))
    parser.add_argument("--crises", type=int, default=120)
    parser.add_argument("--baseline", type=int, default=5,
                        help="crisis messages sent first with no background load: the same run's baseline")
    parser.add_argument("--talkers", type=int, default=60, help="members sending the background load")
    parser.add_argument("--background", action="append", default=[],
                        help="a provisioned room (ID or alias) for background talk; repeat for several. Default: "
                             + ", ".join(BACKGROUND_ROOMS))
    parser.add_argument("--rate", type=float, default=20.0, help="background ordinary messages per second")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between crisis messages")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of background load before measuring")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the last alerts")
    parser.add_argument("--watch-as", choices=("member", "bot"), default="member",
                        help="who syncs the staff room: a member of it alone (like a clinician) or the bot")
    args = parser.parse_args()
    if not args.throwaway:
        return asyncio.run(bench(stack.StackLayout(Path(args.data_dir).resolve()), args))
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        layout = stack.StackLayout(Path(tmp), hs_port=stack.free_port(), hearth_port=stack.free_port())
        try:
            stack.up(layout, say=print, synapse_database=args.synapse_database)
            # the themed spaces, as `make up` applies them: the pipeline screens only those rooms
            subprocess.run([sys.executable, "-m", "bridge", "--config", str(layout.hearth_toml), "spaces", "apply"],
                           check=True, cwd=Path(__file__).resolve().parents[1])
            return asyncio.run(bench(layout, args))
        finally:
            stack.down(layout, say=print)


if __name__ == "__main__":
    sys.exit(main())
