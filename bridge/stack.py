"""Runs the local stack: a Synapse homeserver and the Hearth service, as background processes.

Used by ``make up`` / ``make down`` (through ``hearth stack ...``) and by the end-to-end tests, which
build a throwaway stack in a temp dir on free ports. Every step is idempotent: secrets are generated
once, a process that is already running is left alone, the bot is registered only if missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bridge.private_file import write_private
from config.settings import CONFIG_DIR


class StackError(Exception):
    """A stack step failed; the message says which and where to look."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class StackLayout:
    """Where each part of a stack lives on disk and which ports it answers on."""

    root: Path
    hs_port: int = 8008
    hearth_port: int = 8080
    server_name: str = "localhost"
    bot_localpart: str = "hearth"
    # Federation (0: none). The federation tests run two homeservers on loopback, each named by its
    # IP literal and federation port (``127.0.0.1:PORT``, ``127.0.0.2:PORT``), with TLS on that port.
    federation_port: int = 0
    federation_address: str = "127.0.0.1"

    @property
    def synapse_dir(self) -> Path:
        return self.root / "synapse"

    @property
    def homeserver_yaml(self) -> Path:
        return self.synapse_dir / "homeserver.yaml"

    @property
    def synapse_secrets(self) -> Path:
        return self.synapse_dir / "secrets.json"

    @property
    def synapse_database_file(self) -> Path:
        """Where Synapse's PostgreSQL URL is kept once given (absent: SQLite in synapse_dir)."""
        return self.synapse_dir / "database.json"

    def synapse_database_url(self) -> str | None:
        """Synapse's PostgreSQL URL as kept in :attr:`synapse_database_file`; None for SQLite."""
        if not self.synapse_database_file.exists():
            return None
        return str(json.loads(self.synapse_database_file.read_text())["url"])

    @property
    def tls_certificate(self) -> Path:
        return self.synapse_dir / "federation.crt"

    @property
    def tls_key(self) -> Path:
        return self.synapse_dir / "federation.key"

    @property
    def synapse_pid(self) -> Path:
        return self.synapse_dir / "synapse.pid"

    @property
    def synapse_log(self) -> Path:
        return self.synapse_dir / "homeserver.log"

    @property
    def synapse_stdout(self) -> Path:
        return self.synapse_dir / "stdout.log"

    @property
    def hearth_toml(self) -> Path:
        return self.root / "hearth.toml"

    @property
    def hearth_pid(self) -> Path:
        return self.root / "hearth.pid"

    @property
    def hearth_log(self) -> Path:
        return self.root / "logs" / "hearth.log"

    @property
    def hs_url(self) -> str:
        return f"http://127.0.0.1:{self.hs_port}"

    @property
    def hearth_url(self) -> str:
        return f"http://127.0.0.1:{self.hearth_port}"

    @property
    def bot_user_id(self) -> str:
        return f"@{self.bot_localpart}:{self.server_name}"


def _token() -> str:
    return secrets.token_urlsafe(32)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def dump_toml(data: dict[str, object]) -> str:
    """A TOML document for flat keys and one level of tables (all Hearth's settings need)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def synapse_database_args(url: str) -> dict[str, object]:
    """Synapse's ``database.args`` for psycopg2 from ``postgresql://user[:password]@host[:port]/dbname``.

    Raises :class:`StackError` naming what is wrong with the URL."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise StackError(f"the Synapse database URL must be postgresql://user@host:port/dbname, not {url!r}")
    dbname = parts.path.lstrip("/")
    if not dbname:
        raise StackError(f"the Synapse database URL {url!r} names no database")
    args: dict[str, object] = {
        "dbname": unquote(dbname),
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "cp_min": 5,
        "cp_max": 10,
    }
    if parts.password:
        args["password"] = unquote(parts.password)
    return args


def create_synapse_database(url: str) -> None:
    """Create the database ``url`` names, as Synapse requires it (UTF8, C collation and ctype; see
    Synapse's docs/postgres.md), unless it exists. Connects to the server's ``postgres`` database."""
    import psycopg
    from psycopg import sql

    args = synapse_database_args(url)
    conninfo = {k: args[k] for k in ("host", "port", "user", "password") if k in args}
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:  # type: ignore[arg-type]
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args["dbname"],)).fetchone():
            return
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ).format(sql.Identifier(str(args["dbname"])))
        )


def refresh_planner_statistics(url: str) -> bool:
    """Whether the PostgreSQL server behind ``url`` runs WITHOUT autovacuum; if so, ANALYZE the database.

    Without autovacuum nothing refreshes the planner's statistics: Synapse's tables grow while the
    planner still believes them empty, and its recursive state-group queries turn into sequential
    scans (measured here on a long-lived stack: 439,000 scans of ``state_group_edges`` reading 2.9
    billion rows, PostgreSQL's CPU up from 45% to 71% of a core). ANALYZE at start-up repairs that
    until the tables grow again; the lasting fix is autovacuum (PostgreSQL's default) on the server."""
    import psycopg

    args = synapse_database_args(url)
    conninfo = {k: args[k] for k in ("host", "port", "user", "password") if k in args}
    with psycopg.connect(dbname=str(args["dbname"]), autocommit=True, **conninfo) as conn:  # type: ignore[arg-type]
        row = conn.execute("SHOW autovacuum").fetchone()
        if row is not None and str(row[0]) == "on":
            return False
        conn.execute("ANALYZE")
    return True


# Synapse's default outbound blocklist without 127.0.0.0/8, so two homeservers on loopback reach each other.
LOOPBACK_FEDERATION_BLOCKLIST = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
)


def write_self_signed_certificate(layout: StackLayout) -> None:
    """A self-signed certificate for the federation listener (once; the peer does not verify it)."""
    if layout.tls_certificate.exists() and layout.tls_key.exists():
        return
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, layout.federation_address)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(layout.federation_address))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    write_private(
        layout.tls_key,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
    layout.tls_certificate.write_text(cert.public_bytes(serialization.Encoding.PEM).decode())


def prepare(
    layout: StackLayout,
    overrides: dict[str, object] | None = None,
    gate_enabled: bool = True,
    synapse_database: str | None = None,
) -> None:
    """Generate secrets (once), Hearth's settings file (once) and Synapse's config (every time).

    ``overrides`` are merged into a newly generated settings file (tests use it for the database URL).
    ``gate_enabled=False`` leaves the antispam module out (only to measure what the gate adds).
    ``synapse_database``: a PostgreSQL URL for Synapse (production; kept for later runs in
    ``synapse/database.json``, mode 600). Without one ever given, Synapse uses SQLite in ``synapse/``.
    """
    for folder in (layout.root, layout.synapse_dir):  # member text and secrets live here: owner only
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    if synapse_database:
        synapse_database_args(synapse_database)  # refuse a malformed URL before writing it
        write_private(layout.synapse_database_file, json.dumps({"url": synapse_database}))
    layout.hearth_log.parent.mkdir(parents=True, exist_ok=True)
    layout.hearth_log.parent.chmod(0o700)  # logs name members and rooms
    if not layout.hearth_toml.exists():
        settings: dict[str, object] = {
            "environment": "production",
            "data_dir": str(layout.root.resolve()),
            "matrix": {
                "homeserver_url": layout.hs_url,
                "server_name": layout.server_name,
                "bot_localpart": layout.bot_localpart,
                "bot_password": _token(),
            },
            "http": {"port": layout.hearth_port},
            "gate": {"secret": _token()},
            "staff_api": {"session_secret": _token()},
        }
        for key, value in (overrides or {}).items():
            current = settings.get(key)
            settings[key] = (
                {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
            )
        write_private(
            layout.hearth_toml,
            "# Generated by `make up` with fresh secrets; git-ignored. Edit freely: `make up` keeps it.\n"
            + dump_toml(settings),
        )
    hearth = tomllib.loads(layout.hearth_toml.read_text())
    staff_api = hearth.get("staff_api")
    if isinstance(staff_api, dict) and "token" in staff_api:
        # Settings from before staff sign-in: the shared staff token is gone (staff sign in with Matrix);
        # its place is taken by a key that signs their sessions.
        staff_api.pop("token")
        staff_api.setdefault("session_secret", _token())
        write_private(
            layout.hearth_toml,
            "# Generated by `make up` with fresh secrets; git-ignored. Edit freely: `make up` keeps it.\n"
            "# (staff_api.token removed: staff sign in with their Matrix account now.)\n" + dump_toml(hearth),
        )
    if not layout.synapse_secrets.exists():
        write_private(
            layout.synapse_secrets,
            json.dumps(
                {k: _token() for k in ("registration_shared_secret", "macaroon_secret_key", "form_secret")}
            ),
        )
    syn = json.loads(layout.synapse_secrets.read_text())
    env = Environment(
        loader=FileSystemLoader(CONFIG_DIR / "synapse"), undefined=StrictUndefined, autoescape=False
    )
    values = {
        **syn,
        "server_name": layout.server_name,
        "port": layout.hs_port,
        "data_dir": str(layout.synapse_dir.resolve()),
        "gate_url": f"http://127.0.0.1:{hearth['http']['port']}/_hearth/antispam",
        "gate_secret": hearth["gate"]["secret"],
        "gate_enabled": gate_enabled,
        "postgres": None,
        "federation": None,
    }
    if layout.federation_port:
        write_self_signed_certificate(layout)
        values["federation"] = {
            "port": layout.federation_port,
            "address": layout.federation_address,
            "cert": str(layout.tls_certificate.resolve()),
            "key": str(layout.tls_key.resolve()),
            "blocklist": LOOPBACK_FEDERATION_BLOCKLIST,
            "min_retry": "1s",
            "max_retry": "5s",
        }
    if (url := layout.synapse_database_url()) is not None:
        values["postgres"] = synapse_database_args(url)
    write_private(layout.homeserver_yaml, env.get_template("homeserver.yaml.j2").render(**values))
    write_private(layout.synapse_dir / "log.config", env.get_template("log.config.j2").render(**values))
    signing_key = layout.synapse_dir / f"{layout.server_name}.signing.key"
    if not signing_key.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(layout.homeserver_yaml.resolve()),
                "--generate-keys",
            ],
            check=True,
            cwd=layout.synapse_dir,
            capture_output=True,
            umask=0o077,
        )
    signing_key.chmod(0o600)  # the server's identity; Synapse writes it group-readable


def shared_secret(layout: StackLayout) -> str:
    return str(json.loads(layout.synapse_secrets.read_text())["registration_shared_secret"])


# --- processes --------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _pid_from(pidfile: Path, marker: str) -> int | None:
    """The PID recorded in ``pidfile`` if that process is alive and is what we started."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return pid
    return pid if marker in cmdline else None


def _spawn(cmd: list[str], pidfile: Path, log: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:  # owner only
        log.chmod(0o600)  # a log left by an older version keeps its mode otherwise
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            umask=0o077,  # databases, media, logs and keys: the owner's only
        )
    pidfile.write_text(str(proc.pid))
    return proc.pid


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_http(url: str, pid: int, log: Path, timeout: float, want_status: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise StackError(f"process {pid} exited while starting; last lines of {log}:\n{_tail(log)}")
        try:
            r = httpx.get(url, timeout=2)
            if want_status is None or r.status_code == want_status:
                return
            last = f"{r.status_code} {r.text[:300]}"
        except httpx.HTTPError as e:
            last = str(e)
        time.sleep(0.2)
    raise StackError(f"{url} not ready after {timeout:.0f}s ({last}); see {log}")


def start_synapse(layout: StackLayout, timeout: float = 180) -> int:
    """Start Synapse unless it already runs; wait until its client API answers."""
    pid = _pid_from(layout.synapse_pid, "synapse.app.homeserver")
    if pid is None:
        pid = _spawn(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(layout.homeserver_yaml.resolve())],
            layout.synapse_pid,
            layout.synapse_stdout,
            layout.synapse_dir,
        )
    _wait_http(f"{layout.hs_url}/_matrix/client/versions", pid, layout.synapse_stdout, timeout)
    return pid


def start_hearth(
    layout: StackLayout, timeout: float = 300, env: dict[str, str] | None = None, wait: bool = True
) -> int:
    """Start the Hearth service unless it already runs; wait until /healthz answers 200 (``wait``)."""
    pid = _pid_from(layout.hearth_pid, "bridge")
    if pid is None:
        pid = _spawn(
            [sys.executable, "-m", "bridge", "--config", str(layout.hearth_toml.resolve()), "run"],
            layout.hearth_pid,
            layout.hearth_log,
            Path.cwd(),
            env,
        )
    if wait:
        _wait_http(f"{layout.hearth_url}/healthz", pid, layout.hearth_log, timeout, want_status=200)
    return pid


def stop(pidfile: Path, marker: str, timeout: float = 30, sig: int = signal.SIGTERM) -> bool:
    """Stop the process recorded in ``pidfile`` (SIGTERM, then SIGKILL after ``timeout``)."""
    pid = _pid_from(pidfile, marker)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    pidfile.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_synapse(layout: StackLayout) -> bool:
    return stop(layout.synapse_pid, "synapse.app.homeserver")


def stop_hearth(layout: StackLayout, sig: int = signal.SIGTERM) -> bool:
    return stop(layout.hearth_pid, "bridge", sig=sig)


# --- users ------------------------------------------------------------------------------------


def register_user(layout: StackLayout, localpart: str, password: str, admin: bool = False) -> str | None:
    """Register through Synapse's shared-secret admin API. Returns an access token, or None if the
    user already exists."""
    base = f"{layout.hs_url}/_synapse/admin/v1/register"
    nonce = httpx.get(base, timeout=10).json()["nonce"]
    mac = hmac.new(shared_secret(layout).encode(), digestmod=hashlib.sha1)
    mac.update(
        b"\x00".join(
            [nonce.encode(), localpart.encode(), password.encode(), b"admin" if admin else b"notadmin"]
        )
    )
    r = httpx.post(
        base,
        json={
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        },
        timeout=30,
    )
    if r.status_code == 400 and r.json().get("errcode") == "M_USER_IN_USE":
        return None
    if r.status_code != 200:
        raise StackError(f"registering @{localpart}: {r.status_code} {r.text[:300]}")
    return str(r.json()["access_token"])


def login(layout: StackLayout, localpart: str, password: str, device_id: str | None = None) -> str:
    body: dict[str, object] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
    }
    if device_id:
        body["device_id"] = device_id
    r = httpx.post(f"{layout.hs_url}/_matrix/client/v3/login", json=body, timeout=30)
    if r.status_code != 200:
        raise StackError(f"login as @{localpart}: {r.status_code} {r.text[:300]}")
    return str(r.json()["access_token"])


def exempt_from_ratelimit(layout: StackLayout, admin_token: str, user_id: str) -> None:
    from urllib.parse import quote

    r = httpx.post(
        f"{layout.hs_url}/_synapse/admin/v1/users/{quote(user_id, safe='')}/override_ratelimit",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={"messages_per_second": 0, "burst_count": 0},
        timeout=30,
    )
    if r.status_code != 200:
        raise StackError(f"override_ratelimit for {user_id}: {r.status_code} {r.text[:300]}")


def ensure_bot(layout: StackLayout) -> None:
    """Register the bot as a server admin, once, and exempt it from rate limits. (The service also
    exempts itself after each login, so an existing bot needs no extra login here.)"""
    hearth = tomllib.loads(layout.hearth_toml.read_text())
    token = register_user(layout, layout.bot_localpart, hearth["matrix"]["bot_password"], admin=True)
    if token is not None:
        exempt_from_ratelimit(layout, token, layout.bot_user_id)


def up(
    layout: StackLayout,
    say: Callable[[str], object] = print,
    synapse_database: str | None = None,
    patience: float = 1.0,
) -> None:
    """Everything `make up` does after installing: config, Synapse, bot user, Hearth.

    ``patience`` multiplies how long each process may take to start (tests on shared cores)."""
    if synapse_database:
        try:
            create_synapse_database(synapse_database)
        except StackError:
            raise
        except Exception as e:  # the server is unreachable, refuses us, ...
            raise StackError(f"cannot prepare Synapse's PostgreSQL database ({e})") from e
    prepare(layout, synapse_database=synapse_database)
    if (url := layout.synapse_database_url()) is not None:
        try:
            if refresh_planner_statistics(url):
                say(
                    "synapse: WARNING: autovacuum is off on Synapse's PostgreSQL server, so nothing keeps its "
                    "query planner's statistics fresh and Synapse slows down as its tables grow; ran ANALYZE "
                    "for now. Turn it on: ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();"
                )
        except Exception as e:  # Synapse's own start-up reports an unreachable database more clearly
            say(f"synapse: could not check PostgreSQL's autovacuum setting ({type(e).__name__}: {e})")
    say(f"synapse: starting on {layout.hs_url} (config {layout.homeserver_yaml})")
    start_synapse(layout, timeout=90 * patience)
    say(f"synapse: up; registering {layout.bot_user_id} (admin, no rate limit)")
    ensure_bot(layout)
    say(f"hearth: starting on {layout.hearth_url} (log {layout.hearth_log})")
    start_hearth(layout, timeout=120 * patience)
    say("hearth: healthy")


def down(layout: StackLayout, say: Callable[[str], object] = print) -> None:
    say("hearth: " + ("stopped" if stop_hearth(layout) else "was not running"))
    say("synapse: " + ("stopped" if stop_synapse(layout) else "was not running"))
