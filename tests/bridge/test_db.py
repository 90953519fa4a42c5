import os
import stat
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from bridge.db import import_models, make_engine, migrate
from bridge.models import SyncState


def test_migrations_match_models(engine):
    """Every table and column the models declare exists after `alembic upgrade head`."""
    import_models()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert [d for d in diff if d[0] in ("add_table", "remove_table", "add_column", "remove_column")] == []


def test_migrate_twice_is_harmless_and_keeps_rows(engine):
    with Session(engine) as s:
        s.add(SyncState(user_id="@hearth:localhost", next_batch="s1", updated_at=datetime.now(UTC)))
        s.commit()
    migrate(engine)
    with Session(engine) as s:
        assert s.exec(select(SyncState)).one().next_batch == "s1"


def test_the_sqlite_file_is_private_from_birth_and_narrowed_if_it_was_not(tmp_path):
    """hearth.db holds flagged messages' and escalation excerpts' text: mode 600, with its WAL."""
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "new" / "hearth.db"
        eng = make_engine(f"sqlite:///{fresh}")
        migrate(eng)
        eng.dispose()
        for p in fresh.parent.iterdir():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        loose = tmp_path / "old.db"
        loose.touch(mode=0o644)
        loose.chmod(0o644)
        make_engine(f"sqlite:///{loose}").dispose()
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_database_locked_by_another_process_is_named_as_such_without_the_statement(tmp_path):
    """A write that waits out ``busy_timeout`` behind another process's lock fails as "locked", and
    neither the error nor its reason carries the statement's parameters (they may be members' words)."""
    import sqlite3

    import pytest
    from sqlalchemy.exc import OperationalError

    from bridge.db import unavailable

    path = tmp_path / "hearth.db"
    eng = make_engine(f"sqlite:///{path}", busy_timeout=0.2)
    migrate(eng)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with Session(eng) as s:
            s.add(
                SyncState(
                    user_id="@hearth:localhost", next_batch="a member's words", updated_at=datetime.now(UTC)
                )
            )
            with pytest.raises(OperationalError) as err:
                s.commit()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert unavailable(err.value) == "the database is locked by another process"
    assert "a member's words" not in str(err.value)
    assert unavailable(ValueError("not a database failure")) is None
    eng.dispose()
