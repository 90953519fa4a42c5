from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from bridge.db import import_models, migrate
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
