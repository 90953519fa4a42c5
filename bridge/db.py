"""Database engine, schema migrations (Alembic, applied at start-up) and thread offloading.

SQLModel tables live with their domain (``spaces.models``, ``moderation.models``,
``moderation.escalation``, ``moderation.casework``, ``bridge.models``); this module only wires them to an engine.
Synchronous DB work is pushed to a thread (habit 5) through :func:`run_db`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, exc, text
from sqlmodel import Session, SQLModel, create_engine

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def import_models() -> type[SQLModel]:
    """Import every module that defines tables so ``SQLModel.metadata`` knows them all."""
    import bridge.models  # noqa: F401
    import moderation.casework  # noqa: F401
    import moderation.escalation  # noqa: F401
    import moderation.models  # noqa: F401
    import spaces.models  # noqa: F401
    import spaces.sessions.tables  # noqa: F401

    return SQLModel


def _private_sqlite_file(path: Path) -> None:
    """Create the database file mode 600 before SQLite opens it (it holds flagged messages' and
    escalations' text), or narrow an existing one; SQLite gives its -wal and -shm files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_mode & 0o077:
            p.chmod(0o600)


BUSY_TIMEOUT_SECONDS = 10.0


def make_engine(url: str, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and cross-thread use.

    ``busy_timeout``: how long a statement waits for a lock another process holds (SQLite) or for a
    new connection (PostgreSQL) before it fails as :func:`unavailable` (a request then answers 503).
    Statement parameters never appear in errors or logs (``hide_parameters``): they may be members'
    words (flagged messages, escalation excerpts)."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            _private_sqlite_file(Path(url.removeprefix("sqlite:///")))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=busy_timeout,
        hide_parameters=True,
        connect_args={"connect_timeout": max(1, round(busy_timeout))} if url.startswith("postgresql") else {},
    )


_SQLITE_REASONS = (
    ("locked", "the database is locked by another process"),
    ("busy", "the database is locked by another process"),
    ("full", "the disk holding the database is full"),
    ("disk i/o", "the disk holding the database failed to read or write"),
    ("unable to open", "the database file cannot be opened"),
    ("readonly", "the database file is read-only"),
)


def unavailable(error: BaseException) -> str | None:
    """Why the database cannot be used just now (locked, disk full, unreachable), or None when
    ``error`` is not that kind of failure (a bug, a constraint: retrying would not help).

    The reason names the condition only, never the statement or its parameters."""
    if isinstance(error, exc.TimeoutError):
        return "no database connection became free in time"
    if not isinstance(error, exc.OperationalError | exc.InterfaceError):
        return None
    orig = str(getattr(error, "orig", "") or "").lower()
    if isinstance(error, exc.OperationalError) and "sqlite" in type(error.orig).__module__:
        return next((reason for key, reason in _SQLITE_REASONS if key in orig), None)
    if "no space" in orig or "disk full" in orig:
        return "the disk holding the database is full"
    return "the database server cannot be reached"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    import_models()
    command.upgrade(alembic_config(engine), "head")


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def run_db(engine: Engine, fn: Callable[[Session], T], executor: Executor | None = None) -> T:
    """Run ``fn(session)`` in a worker thread inside a transaction that commits on success.

    ``executor``: a thread pool of the caller's own (a lane that never queues behind the default
    pool's work); None uses the event loop's default pool.
    """

    def _work() -> T:
        with Session(engine, expire_on_commit=False) as session:
            result = fn(session)
            session.commit()
            return result

    if executor is None:
        return await asyncio.to_thread(_work)
    return await asyncio.get_running_loop().run_in_executor(executor, _work)


class DbLane:
    """A thread pool of its own for one subsystem's transactions (``await lane(fn)``), so that its
    commits never queue behind the default pool's work."""

    def __init__(self, engine: Engine, name: str, workers: int = 2):
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def __call__(self, fn: Callable[[Session], T]) -> T:
        return await run_db(self.engine, fn, self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
